"""E911 core (layer 1 of ARCHITECTURE.md): pure, no I/O beyond reading its packaged data.

- `civic`: RFC 5139 civic addresses, country profiles (`data/countries.toml`),
  normalisation, validation (`Problem` rows), dispatchable location, E.164 callbacks.
- `pidf`: PIDF-LO build/parse and validation (`schemas/*.xsd`, RFC 5491 rules).
- `conveyance`: RFC 6442 multipart body, Geolocation headers, reading them back.
- `dialplans`: emergency dial strings per region (`data/dialplans.toml`) → service URN.
- `notify`: Kari's Law notification payload.
- `moves`: R13 move detection from REGISTER fingerprints.
"""
