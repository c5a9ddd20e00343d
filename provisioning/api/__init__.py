"""Provisioning HTTP API (FastAPI): `create_app(ProvisioningContext) -> FastAPI`."""

from provisioning.api.app import API_PREFIX, create_app
from provisioning.api.context import LiveView, NoLiveView, ProvisioningContext

__all__ = ["API_PREFIX", "LiveView", "NoLiveView", "ProvisioningContext", "create_app"]
