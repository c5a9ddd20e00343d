"""The simulated PSTN: a built-in trunk peer for E.164 destinations not on the platform.

- `rules.RuleBook`: number patterns → behaviours (answer, busy 486, ring then
  480, 404, answer and hang up after N s, ring forever…), with a default
  table (see `gateway.pstn.rules`) and run-time `set_rule` / `remove_rule` /
  `rules` / `clear` for the API.
- `log.PstnLog`: one `PstnCall` per INVITE (number, rule, behaviour, times,
  outcome, RTP packets echoed).
- `simulator.PstnSimulator`: the sans-IO peer (the generic UAS deciding
  from the rule book); `server.PstnServer.start(host, port, clock=…)` runs it
  with an RTP echo, so a real phone calling it hears itself.
"""

from gateway.pstn.log import PstnCall, PstnLog
from gateway.pstn.rules import (
    DEFAULT_RULES,
    PRESETS,
    Rule,
    RuleBook,
    behaviour_to_dict,
    parse_behaviour,
)
from gateway.pstn.server import PstnServer
from gateway.pstn.simulator import PstnSimulator, dialled_number

__all__ = [
    "DEFAULT_RULES",
    "PRESETS",
    "PstnCall",
    "PstnLog",
    "PstnServer",
    "PstnSimulator",
    "Rule",
    "RuleBook",
    "behaviour_to_dict",
    "dialled_number",
    "parse_behaviour",
]
