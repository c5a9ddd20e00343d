"""Real SIP peers for voiplab's integration tests: pjsua2 phones, SIPp, the RFC 4475 sender.

Every helper here talks only to 127.0.0.1 / ::1 (or to a loopback-only network namespace) and
takes its state as arguments: nothing is kept at module level, so two tests never share a phone.
"""
