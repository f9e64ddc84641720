"""Hostile conditions, made on purpose: a server SIGKILLed under load (`run_chaos`) and every
function tried with every other party's ids and identities (`run_isolation`).

    python -m tools.chaos --duration 120 --kills 30      # crash under load
    python -m tools.chaos isolation --rounds 20          # cross-organization isolation

docs/reliability.md says what each checks and holds the figures of full runs.
"""

from tools.chaos.crash import ChaosConfig, ChaosError, ChaosReport, run_chaos
from tools.chaos.isolation import IsolationConfig, IsolationReport, run_isolation
from tools.chaos.probes import PROBES, Probe, missing_probes

__all__ = [
    "PROBES",
    "ChaosConfig",
    "ChaosError",
    "ChaosReport",
    "IsolationConfig",
    "IsolationReport",
    "Probe",
    "missing_probes",
    "run_chaos",
    "run_isolation",
]
