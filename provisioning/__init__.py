"""Provisioning: the single writer of accounts, users, locations, devices and lines.

Layer 2 of ARCHITECTURE.md: imports `hardware_profiles` and `e911` below it,
never `gateway` above it. Map of the package:

- `db` engine (SQLite WAL / PostgreSQL via psycopg 3), `models` tables, `schemas` I/O shapes
- `services` domain functions (validate, write + audit, commit, publish a `Change`)
- `events` `Change` + `ChangeBus`; `directory` the gateway's in-memory read model
- `cdrs` call-record store; `credentials` HA1 and generated secrets; `audit` redaction
- `api` FastAPI app (`create_app(ProvisioningContext)`); `demo` seed for `make run`
"""
