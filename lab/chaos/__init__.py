"""Hostile conditions, made on purpose: a server SIGKILLed under load (`run_chaos`) and every
function tried with every other party's ids and identities (`run_isolation`).

    python -m lab.chaos --duration 120 --kills 30      # crash under load
    python -m lab.chaos isolation --rounds 20          # cross-organization isolation

docs/reliability.md says what each checks and holds the figures of full runs.
"""

from lab.chaos.crash import ChaosConfig, ChaosError, ChaosReport, run_chaos
from lab.chaos.isolation import IsolationConfig, IsolationReport, run_isolation
from lab.chaos.probes import PROBES, Probe, missing_probes

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
