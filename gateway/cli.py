"""``voiplab`` command line: ``voiplab serve`` runs the gateway and the API in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.settings import Settings
from provisioning.cli import provision_app

app = typer.Typer(help="voiplab: SIP gateway simulator with device provisioning and E911.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """voiplab command line."""


@app.command()
def serve(
    sip: Annotated[list[str] | None, typer.Option(help="SIP listen address host:port (UDP+TCP); repeatable, e.g. [::1]:5060")] = None,
    api: Annotated[str | None, typer.Option(help="HTTP API listen address host:port")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL: sqlite:///path or postgresql://…")] = None,
    domain: Annotated[str | None, typer.Option(help="SIP domain, also the digest realm")] = None,
    time_scale: Annotated[float | None, typer.Option("--time-scale", help="Simulated seconds per real second")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite DB and generated TLS keys live")] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Also listen on TLS (self-signed pair generated if no cert)")] = False,
    tls_port: Annotated[int | None, typer.Option(help="TLS port (default: SIP port + 1)")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate for TLS")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for TLS")] = None,
    advertise: Annotated[str | None, typer.Option(help="Host written into Via and Record-Route")] = None,
    digest: Annotated[str | None, typer.Option(help="Digest algorithms offered, in order, e.g. 'SHA-256,MD5'")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Create a demo account with two softphones and print their settings")] = False,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING")] = None,
    registrar_workers: Annotated[int | None, typer.Option(
        "--registrar-workers", help="Extra processes handling UDP REGISTER (0: all in one process)")] = None,
) -> None:
    """Run the SIP gateway and the provisioning API in one asyncio loop."""
    from gateway.serve import run

    overrides: dict[str, Any] = {
        "sip": sip or None, "api": api, "db": db, "domain": domain, "time_scale": time_scale,
        "data_dir": data_dir, "tls_port": tls_port, "tls_cert": tls_cert, "tls_key": tls_key,
        "advertise": advertise, "log_level": log_level, "registrar_workers": registrar_workers,
        "digest_algorithms": [d.strip() for d in digest.split(",")] if digest else None,
    }
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    if tls:
        settings.tls = True
    if demo:
        settings.demo = True
    if db is None and settings.db == "sqlite:///data/voiplab.db" and data_dir is not None:
        settings.db = f"sqlite:///{data_dir}/voiplab.db"
    run(settings)


app.add_typer(provision_app, name="provision")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
