"""One exception per Varlink error the daemon answers with."""
from typing import Any, Dict, List, Optional


class EdgePlanError(Exception):
    """Any error the daemon answered with; `name` is the Varlink error, `parameters` its fields."""

    def __init__(self, name: str, parameters: Dict[str, Any]):
        self.name = name
        self.parameters = parameters
        super().__init__(parameters.get("message") or f"{name} {parameters}")


class Infeasible(EdgePlanError):
    """No configuration meets the request's limits; `limit` names which, `closest` the nearest miss."""

    @property
    def limit(self) -> str:
        return self.parameters.get("limit", "")

    @property
    def miss_by_ms(self) -> Optional[float]:
        """How far the closest configuration misses the deadline, when that is the limit."""
        return self.parameters.get("missByMs")

    @property
    def miss_by_j(self) -> Optional[float]:
        """How far the closest configuration exceeds the energy budget, when that is the limit."""
        return self.parameters.get("missByJ")

    @property
    def miss_by_accuracy(self) -> Optional[float]:
        """How far (a fraction) the best configuration falls short of the accuracy floor, when that is the limit."""
        return self.parameters.get("missByAccuracy")

    @property
    def miss_by_tokens(self) -> Optional[float]:
        """How many tokens the smallest configuration lacks in the context, when that is the limit."""
        return self.parameters.get("missByTokens")

    @property
    def closest(self) -> Dict[str, Any]:
        return self.parameters.get("closest") or {}


class UnknownTask(EdgePlanError):
    @property
    def known(self) -> List[str]:
        return self.parameters.get("known", [])


class UnknownModel(EdgePlanError):
    pass


class InvalidParameter(EdgePlanError):
    @property
    def parameter(self) -> str:
        return self.parameters.get("parameter", "")


class InvalidInput(InvalidParameter):
    """A value of the right type that is still wrong; `message` says why."""

    @property
    def message(self) -> str:
        return self.parameters.get("message", "")


class ReloadFailed(EdgePlanError):
    """The new policy has an error; `policy_version` is the one still in force."""

    @property
    def policy_version(self) -> str:
        return self.parameters.get("policyVersion", "")


class PermissionDenied(EdgePlanError):
    """This process may not Report: the policy's `reporting` section does not name its user or group."""


class TooManyConnections(EdgePlanError):
    pass


_BY_NAME = {
    "io.edgeplan.Planner.Infeasible": Infeasible,
    "io.edgeplan.Planner.UnknownTask": UnknownTask,
    "io.edgeplan.Planner.UnknownModel": UnknownModel,
    "io.edgeplan.Planner.TooManyConnections": TooManyConnections,
    "io.edgeplan.Planner.InvalidInput": InvalidInput,
    "io.edgeplan.Planner.ReloadFailed": ReloadFailed,
    "org.varlink.service.InvalidParameter": InvalidParameter,
    "org.varlink.service.PermissionDenied": PermissionDenied,
}


def from_varlink(error) -> EdgePlanError:
    """The typed exception for a `varlink.VarlinkError`."""
    name = error.error()
    parameters = error.parameters() or {}
    return _BY_NAME.get(name, EdgePlanError)(name, parameters)
