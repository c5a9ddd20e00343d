"""Domain services: the only code that writes provisioning data.

Each function takes a `ServiceEnv` (session, injected clock, bus, actor …),
validates, writes one transaction with its audit event, commits, and then
publishes a `Change`. Reads take a plain `Session`.
"""

from provisioning.services.accounts import (
    REGIONS,
    create_account,
    get_account,
    list_accounts,
    record_deposit,
    set_allowed_prefixes,
    set_flex_minimum,
)
from provisioning.services.devices import (
    R12_MESSAGE,
    ProvisionedDevice,
    activate_device,
    bind_location,
    create_device,
    get_device,
    list_devices,
    reassign_line,
    resume_device,
    retire_device,
    rotate_line_password,
    suspend_device,
    update_device,
)
from provisioning.services.env import Clock, ServiceEnv
from provisioning.services.locations import create_location, get_location, list_locations
from provisioning.services.users import create_user, get_user, list_users

__all__ = [
    "R12_MESSAGE",
    "REGIONS",
    "Clock",
    "ProvisionedDevice",
    "ServiceEnv",
    "activate_device",
    "bind_location",
    "create_account",
    "create_device",
    "create_location",
    "create_user",
    "get_account",
    "get_device",
    "get_location",
    "get_user",
    "list_accounts",
    "list_devices",
    "list_locations",
    "list_users",
    "reassign_line",
    "record_deposit",
    "resume_device",
    "retire_device",
    "rotate_line_password",
    "set_allowed_prefixes",
    "set_flex_minimum",
    "suspend_device",
    "update_device",
]
