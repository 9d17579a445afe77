"""The in-memory index: caller number -> client -> ordered responsibles -> employee.

Per account, a compact base built from the database (flat arrays, about 40
bytes a phone) plus small overlays for what changed since it was built. Phone
keys are sorted with the clients of one number in "first found" order, so a
lookup is one short bisect. Responsibles are stored as employee slots and resolved
at lookup time, so blocking an employee or changing an extension takes effect
for all their clients at once, without a rebuild.

The objects here are mutated in place by the loader and the listener: the app
holds one ``IndexRegistry`` for its whole life.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Container
from dataclasses import dataclass

from lookup.phones import phone_key
from lookup.rules import (
    NO_CLIENT,
    Decision,
    EmployeeRef,
    decide_for_client,
    decide_passing_busy,
)

__all__ = ["AccountIndex", "BaseArrays", "ClientEntry", "IndexRegistry"]


@dataclass(frozen=True, slots=True)
class ClientEntry:
    """A client changed since the base was built (overlay)."""

    crm_id: str
    responsibles: tuple[int, ...]  # employee slots, CRM order


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseArrays:
    """The bulk of an account's index, built in one go (``cache.loader``).

    Laid out for few cache misses per lookup: a bucket directory narrows the
    bisect to a handful of keys, and a client's CRM id and responsibles range
    sit side by side in ``client_rec``.
    """

    phone_keys: array[int]  # 'q', sorted; a number with several clients repeats
    phone_slot: array[int]  # 'i': client slot of each phone key
    bucket_start: array[int]  # 'i', len = buckets + 1: bucket -> range in phone_keys
    bucket_base: int  # key of the first bucket's lower edge
    bucket_width: int  # keys a bucket spans (the edge buckets take all beyond)
    client_uid: array[int]  # 'q', sorted: the database uid of each client slot
    client_rec: array[int]  # 'q', 3 per slot: CRM id as int (-1: odd), resp start, end
    resp_slot: array[int]  # 'i': employee slots in CRM order
    odd_crm_ids: dict[int, str]  # uid -> CRM id, for ids that are not plain digits

    @classmethod
    def empty(cls) -> BaseArrays:
        return cls(
            phone_keys=array("q"),
            phone_slot=array("i"),
            bucket_start=array("i", [0, 0]),
            bucket_base=0,
            bucket_width=1,
            client_uid=array("q"),
            client_rec=array("q"),
            resp_slot=array("i"),
            odd_crm_ids={},
        )


_MISSING = ClientEntry("", ())


class AccountIndex:
    """One account's routing index. Lookups never touch the database."""

    __slots__ = (
        "_base",
        "_employee_slots",
        "_employees",
        "_overlay_clients",
        "_overlay_phones",
        "region",
    )

    def __init__(self, region: str = "RU") -> None:
        self.region = region
        self._base = BaseArrays.empty()
        self._employees: list[EmployeeRef | None] = []  # by slot
        self._employee_slots: dict[str, int] = {}  # CRM id -> slot
        self._overlay_phones: dict[int, tuple[int, ...]] = {}  # key -> client uids, in order
        self._overlay_clients: dict[int, ClientEntry | None] = {}  # uid -> entry (None: gone)

    # -- lookups (the hot path) -------------------------------------------------------

    def decide(self, number: str) -> Decision | None:
        """The routing decision for a caller number; None when it is not a phone number."""
        key = phone_key(number, self.region)
        if key is None:
            return None
        return self.decide_key(key)

    def decide_key(self, key: int, busy: Container[str] | None = None) -> Decision:
        """The decision for a phone key; with ``busy`` (extensions on a call), busy
        responsibles are passed over (``lookup.rules.decide_passing_busy``)."""
        number = str(key)
        base = self._base
        overlay_clients = self._overlay_clients
        uids = self._overlay_phones.get(key) if self._overlay_phones else None
        if uids is None:  # the common case: the number is as the base has it
            buckets = base.bucket_start
            bucket = (key - base.bucket_base) // base.bucket_width
            last = len(buckets) - 2
            bucket = 0 if bucket < 0 else last if bucket > last else bucket
            hi = buckets[bucket + 1]
            keys = base.phone_keys
            i = bisect_left(keys, key, buckets[bucket], hi)
            if i == hi or keys[i] != key:
                return Decision(number, NO_CLIENT)
            slot = base.phone_slot[i]
            if not overlay_clients or base.client_uid[slot] not in overlay_clients:
                return self._decide_base(number, slot, busy)
            entry = overlay_clients[base.client_uid[slot]]
        else:
            if not uids:
                return Decision(number, NO_CLIENT)
            entry = overlay_clients.get(uids[0], _MISSING)
            if entry is _MISSING:
                found = self._base_slot(uids[0])
                if found is None:  # cannot happen while overlays are kept whole
                    return Decision(number, NO_CLIENT)
                return self._decide_base(number, found, busy)
        if entry is None:
            return Decision(number, NO_CLIENT)
        if busy:
            return decide_passing_busy(number, entry.crm_id, self._employees, entry.responsibles,
                                       0, None, busy)
        return decide_for_client(number, entry.crm_id, self._employees, entry.responsibles)

    def _decide_base(self, number: str, slot: int, busy: Container[str] | None) -> Decision:
        base = self._base
        rec = base.client_rec
        at = slot * 3
        crm = rec[at]
        client_id = str(crm) if crm >= 0 else base.odd_crm_ids[base.client_uid[slot]]
        if busy:
            return decide_passing_busy(number, client_id, self._employees, base.resp_slot,
                                       rec[at + 1], rec[at + 2], busy)
        return decide_for_client(number, client_id, self._employees, base.resp_slot,
                                 rec[at + 1], rec[at + 2])

    def employee(self, crm_id: str) -> EmployeeRef | None:
        """An employee as the copy has them now (active flag, extension), by CRM id."""
        slot = self._employee_slots.get(crm_id)
        return None if slot is None else self._employees[slot]

    def _base_slot(self, uid: int) -> int | None:
        client_uid = self._base.client_uid
        i = bisect_left(client_uid, uid)
        return i if i < len(client_uid) and client_uid[i] == uid else None

    # -- upkeep (loader and listener) --------------------------------------------------

    def __len__(self) -> int:
        """Phone keys served (base plus overlay, approximately: overlays may repeat keys)."""
        return len(self._base.phone_keys) + sum(1 for v in self._overlay_phones.values() if v)

    @property
    def overlay_size(self) -> int:
        return len(self._overlay_phones) + len(self._overlay_clients)

    def employee_slot(self, crm_id: str) -> int:
        slot = self._employee_slots.get(crm_id)
        if slot is None:
            slot = len(self._employees)
            self._employee_slots[crm_id] = slot
            self._employees.append(None)
        return slot

    def set_employees(self, employees: list[EmployeeRef]) -> None:
        """Replace every employee's state; responsibles keep pointing at the same slots."""
        for employee in employees:
            self.employee_slot(employee.crm_id)
        table: list[EmployeeRef | None] = [None] * len(self._employees)
        for employee in employees:
            table[self._employee_slots[employee.crm_id]] = employee
        self._employees = table

    def replace_base(self, base: BaseArrays, employee_slots: dict[str, int],
                     employees: list[EmployeeRef]) -> None:
        """Install a freshly built base; overlays are dropped (the base is newer)."""
        self._employee_slots = dict(employee_slots)
        self._employees = [None] * len(employee_slots)
        self.set_employees(employees)
        self._base = base
        self._overlay_phones = {}
        self._overlay_clients = {}

    def set_phone(self, key: int, client_uids: tuple[int, ...]) -> None:
        self._overlay_phones[key] = client_uids

    def set_client(self, uid: int, entry: ClientEntry | None) -> None:
        self._overlay_clients[uid] = entry


class IndexRegistry:
    """Every account's index, by account id; one object for the life of the app."""

    __slots__ = ("_by_account", "loaded")

    def __init__(self) -> None:
        self._by_account: dict[int, AccountIndex] = {}
        self.loaded = False

    def get(self, account_id: int) -> AccountIndex | None:
        return self._by_account.get(account_id)

    def put(self, account_id: int, index: AccountIndex) -> None:
        self._by_account[account_id] = index

    def drop(self, account_id: int) -> None:
        self._by_account.pop(account_id, None)

    def account_ids(self) -> list[int]:
        return list(self._by_account)

    def phones(self) -> int:
        return sum(len(i) for i in self._by_account.values())
