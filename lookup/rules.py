"""The routing rules (PROTOCOLS §4), in one place.

Among the clients with the caller's number, the first found is the one with
the smallest CRM id (the index keeps them in that order). Its responsibles are
walked in the CRM's order: clients and groups set as responsible are not
employees and are skipped; the first employee who is active takes the call,
if it has an extension; otherwise nobody does (the call is not sent to the
next employee: the responsible is the responsible).

With ``skip_busy_responsible`` the walk is ``decide_passing_busy``: an active
employee whose extension is on a call is passed over too, and the next active
one is taken by the same rule (one without an extension still gives
``no_extension``); when every active one is busy, nobody is (``busy``). It is
a function of its own so that the walk without busy employees costs exactly
what it did.

A number no client has, with ``route_unknown_to_last_contact``, goes to the
employee who last talked to it (``decide_by_last_contact``), by the same
rules for that one employee: active, with an extension, free when busy ones
are passed over.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

__all__ = [
    "BUSY",
    "LAST_CONTACT",
    "NEXT_FREE",
    "NO_ACTIVE_RESPONSIBLE",
    "NO_CLIENT",
    "NO_EXTENSION",
    "Decision",
    "EmployeeRef",
    "FoundBy",
    "decide_by_last_contact",
    "decide_for_client",
    "decide_passing_busy",
]

NO_CLIENT = "no_client"
NO_ACTIVE_RESPONSIBLE = "no_active_responsible"
NO_EXTENSION = "no_extension"
BUSY = "busy"
# How a decision's employee was found when not as the client's first active
# responsible (Decision.via, recorded in decisions.via):
NEXT_FREE = "next_free"  # busy responsibles were passed over
LAST_CONTACT = "last_contact"  # no client: the employee who last talked to the number


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
    via: str | None = None  # see FoundBy: a class default costs the common case nothing

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
        return (self.number, self.reason, self.client_id, self.employee_id, self.extension,
                self.via)

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
            found = {
                "number": self.number,
                "client_id": self.client_id,
                "employee_id": self.employee_id,
                "extension": self.extension,
            }
        else:
            found = {"number": self.number, "reason": self.reason}
        if self.via is not None:
            found["via"] = self.via
        return found


class FoundBy(Decision):
    """A decision whose employee was found another way (``via``: ``NEXT_FREE``,
    ``LAST_CONTACT``). A subclass, so that the plain decision stays five slots."""

    __slots__ = ("via",)

    def __init__(
        self,
        via: str,
        number: str,
        reason: str | None,
        client_id: str | None = None,
        employee_id: str | None = None,
        extension: str | None = None,
    ) -> None:
        super().__init__(number, reason, client_id, employee_id, extension)
        self.via = via


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


def decide_passing_busy(
    number: str,
    client_id: str,
    employees: Sequence[EmployeeRef | None],
    responsibles: Sequence[int],
    start: int,
    end: int | None,
    busy: Container[str],
) -> Decision:
    """``decide_for_client``, passing over active employees whose extension is in
    ``busy``; when every active one is busy, the outcome names the first of them."""
    passed: EmployeeRef | None = None
    for i in range(start, len(responsibles) if end is None else end):
        employee = employees[responsibles[i]]
        if employee is None or not employee.active:
            continue
        if not employee.extension:
            return Decision(number, NO_EXTENSION, client_id, employee.crm_id)
        if employee.extension in busy:
            passed = passed or employee
            continue
        if passed is None:
            return Decision(number, None, client_id, employee.crm_id, employee.extension)
        return FoundBy(NEXT_FREE, number, None, client_id, employee.crm_id, employee.extension)
    if passed is not None:
        return Decision(number, BUSY, client_id, passed.crm_id)
    return Decision(number, NO_ACTIVE_RESPONSIBLE, client_id)


def decide_by_last_contact(
    number: str, employee: EmployeeRef | None, busy: Container[str] | None = None
) -> Decision:
    """A number no client has, sent to the employee who last talked to it: who is no
    longer an active employee is nobody (``no_client`` stays the outcome)."""
    if employee is None or not employee.active:
        return Decision(number, NO_CLIENT)
    if not employee.extension:
        return FoundBy(LAST_CONTACT, number, NO_EXTENSION, None, employee.crm_id)
    if busy and employee.extension in busy:
        return FoundBy(LAST_CONTACT, number, BUSY, None, employee.crm_id)
    return FoundBy(LAST_CONTACT, number, None, None, employee.crm_id, employee.extension)
