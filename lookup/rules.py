"""The routing rules (PROTOCOLS §4), in one place.

Among the clients with the caller's number, the first found is the one with
the smallest CRM id (the index keeps them in that order). Its responsibles are
walked in the CRM's order: clients and groups set as responsible are not
employees and are skipped; the first employee who is active takes the call,
if it has an extension; otherwise nobody does (the call is not sent to the
next employee: the responsible is the responsible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "NO_ACTIVE_RESPONSIBLE",
    "NO_CLIENT",
    "NO_EXTENSION",
    "Decision",
    "EmployeeRef",
    "decide_for_client",
]

NO_CLIENT = "no_client"
NO_ACTIVE_RESPONSIBLE = "no_active_responsible"
NO_EXTENSION = "no_extension"


@dataclass(frozen=True, slots=True)
class EmployeeRef:
    """What routing needs of an employee; resolved at lookup time, never copied per client."""

    crm_id: str
    extension: str | None
    active: bool


class Decision:
    """One per call: a slotted object with a plain ``__init__``, the cheapest record
    Python makes (a NamedTuple or a frozen dataclass costs twice as much). Treat
    it as immutable."""

    __slots__ = ("client_id", "employee_id", "extension", "number", "reason")

    def __init__(
        self,
        number: str,  # canonical form
        reason: str | None,  # None when routed
        client_id: str | None = None,
        employee_id: str | None = None,
        extension: str | None = None,
    ) -> None:
        self.number = number
        self.reason = reason
        self.client_id = client_id
        self.employee_id = employee_id
        self.extension = extension

    def _fields(self) -> tuple[str | None, ...]:
        return (self.number, self.reason, self.client_id, self.employee_id, self.extension)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "Decision({})".format(", ".join(repr(f) for f in self._fields()))

    @property
    def routed(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, str | None]:
        if self.reason is None:
            return {
                "number": self.number,
                "client_id": self.client_id,
                "employee_id": self.employee_id,
                "extension": self.extension,
            }
        return {"number": self.number, "reason": self.reason}


def decide_for_client(
    number: str,
    client_id: str,
    employees: Sequence[EmployeeRef | None],
    responsibles: Sequence[int],
    start: int = 0,
    end: int | None = None,
) -> Decision:
    """Walk ``responsibles[start:end]`` (slots of ``employees``, CRM order) by the rules.

    A slot whose employee the copy does not know (None) is skipped like an
    inactive one. The range form spares the hot path a slice per call.
    """
    for i in range(start, len(responsibles) if end is None else end):
        employee = employees[responsibles[i]]
        if employee is None or not employee.active:
            continue
        if not employee.extension:
            return Decision(number, NO_EXTENSION, client_id, employee.crm_id)
        return Decision(number, None, client_id, employee.crm_id, employee.extension)
    return Decision(number, NO_ACTIVE_RESPONSIBLE, client_id)
