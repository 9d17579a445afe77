"""Building an account's index from PostgreSQL, and refreshing parts of it.

A full build streams the account's clients, responsibles and phones with
binary ``COPY`` (fixed-width int8 rows that numpy reads without a per-row
Python step), inside one REPEATABLE READ transaction so the parts agree.
Refreshes read only the phone keys and clients a change notification named.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.index import AccountIndex, BaseArrays, ClientEntry
from lookup.conn import Conn
from lookup.rules import EmployeeRef

logger = logging.getLogger(__name__)

__all__ = ["build_base", "load_account_index", "load_employees", "refresh"]

_I64_MAX = 2**63 - 1
_COPY_HEADER = 19  # signature, flags, header extension length
_ODD_ORDER = 2**62  # non-digit CRM ids sort after all digit ones
_KEYS_PER_BUCKET = 8


async def load_account_index(
    con: Conn, account_id: int, region: str = "RU"
) -> AccountIndex:
    index = AccountIndex(region)
    await build_base(con, account_id, index)
    return index


async def load_employees(con: Conn, account_id: int) -> list[EmployeeRef]:
    rows = await con.fetch(
        "SELECT crm_id, extension, active FROM employees WHERE account_id = $1", account_id
    )
    return [EmployeeRef(r["crm_id"], r["extension"] or None, r["active"]) for r in rows]


async def build_base(con: Conn, account_id: int, index: AccountIndex) -> None:
    """Rebuild ``index`` from the database in one consistent snapshot, then swap it in.

    The arrays are assembled in a worker thread (numpy drops the GIL for its sorts),
    so routing goes on while a large account is rebuilt.
    """
    base, slots, employees = await _read_base(con, account_id)
    index.replace_base(base, slots, employees)
    del base
    await asyncio.to_thread(_release_memory)  # here, once the build's temporaries are gone


async def _read_base(
    con: Conn, account_id: int
) -> tuple[BaseArrays, dict[str, int], list[EmployeeRef]]:
    async with con.transaction(isolation="repeatable_read", readonly=True):
        employees = await load_employees(con, account_id)
        slots: dict[str, int] = {}
        for e in employees:
            slots.setdefault(e.crm_id, len(slots))
        for row in await con.fetch(
            "SELECT DISTINCT ref_id FROM client_responsibles"
            " WHERE account_id = $1 AND kind = 'employee'",
            account_id,
        ):
            slots.setdefault(row["ref_id"], len(slots))

        clients = await _copy_ints(
            con,
            """SELECT uid, CASE WHEN crm_order <= $2 THEN crm_order::int8 ELSE -1 END
               FROM clients WHERE account_id = $1 AND NOT dropped ORDER BY uid""",
            2,
            account_id,
            _I64_MAX,
        )
        client_uid, client_crm = clients[0], clients[1]
        odd_rows = await con.fetch(
            """SELECT uid, crm_id FROM clients WHERE account_id = $1 AND NOT dropped
               AND (crm_order IS NULL OR crm_order > $2)
               ORDER BY crm_order NULLS LAST, crm_id""",
            account_id,
            _I64_MAX,
        )
        odd_crm_ids = {r["uid"]: r["crm_id"] for r in odd_rows}

        refs = list(slots)
        resp = await _copy_ints(
            con,
            """SELECT r.client_uid, r.position::int8, m.slot
               FROM client_responsibles r
               JOIN unnest($2::text[], $3::int8[]) AS m(ref_id, slot) ON m.ref_id = r.ref_id
               WHERE r.account_id = $1 AND r.kind = 'employee'""",
            3,
            account_id,
            refs,
            list(range(len(refs))),
        )
        phones = await _copy_ints(
            con,
            "SELECT phone_key, client_uid FROM client_phones WHERE account_id = $1",
            2,
            account_id,
        )
    base = await asyncio.to_thread(_assemble, client_uid, client_crm, odd_crm_ids, resp, phones)
    return base, slots, employees


def _assemble(
    client_uid: npt.NDArray[np.int64],
    client_crm: npt.NDArray[np.int64],
    odd_crm_ids: dict[int, str],
    resp: list[npt.NDArray[np.int64]],
    phones: list[npt.NDArray[np.int64]],
) -> BaseArrays:
    # responsibles: ordered by (client, position); each client slot gets its range
    order = np.lexsort((resp[1], resp[0]))
    resp_uid, resp_slot = resp[0][order], resp[2][order]
    resp_start = np.searchsorted(resp_uid, client_uid, side="left")
    resp_end = np.searchsorted(resp_uid, client_uid, side="right")
    # keep only responsibles of live clients, contiguous per client
    counts = resp_end - resp_start
    resp_slot = resp_slot[_ranges(resp_start, counts)]
    ends = np.cumsum(counts)
    client_rec = np.stack([client_crm, ends - counts, ends], axis=1).reshape(-1)

    # phones: live clients only, sorted by (key, "first found" order)
    phone_key, phone_uid = phones[0], phones[1]
    slot = np.searchsorted(client_uid, phone_uid)
    slot[slot >= len(client_uid)] = 0
    live = (client_uid[slot] == phone_uid) if len(client_uid) else np.zeros(0, dtype=bool)
    phone_key, slot = phone_key[live], slot[live]
    crm_order = client_crm.copy()
    for rank, uid in enumerate(odd_crm_ids):  # rows came in "first found" order
        odd_slot = int(np.searchsorted(client_uid, uid))
        crm_order[odd_slot] = _ODD_ORDER + rank
    by = np.lexsort((crm_order[slot], phone_key))
    phone_key, slot = phone_key[by], slot[by]
    bucket_start, bucket_base, bucket_width = _directory(phone_key)

    return BaseArrays(
        phone_keys=_to_array("q", phone_key),
        phone_slot=_to_array("i", slot),
        bucket_start=_to_array("i", bucket_start),
        bucket_base=bucket_base,
        bucket_width=bucket_width,
        client_uid=_to_array("q", client_uid),
        client_rec=_to_array("q", client_rec),
        resp_slot=_to_array("i", resp_slot),
        odd_crm_ids=odd_crm_ids,
    )


def _release_memory() -> None:
    """Give the build's scratch memory back to the OS.

    The COPY buffers and numpy temporaries are several times the final index;
    glibc keeps freed heap pages in the process unless asked to trim them.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _find_malloc_trim() -> Any:
    libc_name = ctypes.util.find_library("c")  # ~1 ms: once, at import
    return getattr(ctypes.CDLL(libc_name), "malloc_trim", None) if libc_name else None


_MALLOC_TRIM = _find_malloc_trim()


def _directory(keys: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], int, int]:
    """Equal-width buckets over the bulk of the keys, about eight keys each.

    The bulk is the 1st to 99th percentile, so a few foreign numbers far from
    the rest do not stretch every bucket; keys beyond it fall in the edge buckets.
    """
    if len(keys) == 0:
        return np.array([0, 0], dtype=np.int64), 0, 1
    low, high = (int(v) for v in np.percentile(keys, [1, 99], method="nearest"))
    buckets = max(1, len(keys) // _KEYS_PER_BUCKET)
    width = max(1, (high - low) // buckets + 1)
    edges = low + width * np.arange(1, buckets, dtype=np.int64)
    starts = np.concatenate(([0], np.searchsorted(keys, edges, side="left"), [len(keys)]))
    return starts.astype(np.int64), low, width


def _ranges(starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Concatenated ``range(start, start + count)`` for every pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return np.arange(total, dtype=np.int64) + offsets


def _to_array(code: str, values: npt.NDArray[np.int64]) -> array[int]:
    out = array(code)
    out.frombytes(values.astype(np.dtype(f"i{out.itemsize}")).tobytes())
    return out


async def _copy_ints(
    con: Conn, query: str, columns: int, *args: object
) -> list[npt.NDArray[np.int64]]:
    """Run ``query`` (int8 columns, no NULLs) through binary COPY; one array per column."""
    chunks: list[bytes] = []

    async def take(chunk: bytes) -> None:  # not a file: asyncpg would write it in a thread
        chunks.append(chunk)

    await con.copy_from_query(query, *args, output=take, format="binary")
    raw = b"".join(chunks)
    del chunks[:]
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for c in range(columns):
        fields += [(f"l{c}", ">i4"), (f"v{c}", ">i8")]
    dtype = np.dtype(fields)
    body = raw[_COPY_HEADER : len(raw) - 2]  # trailer: int16 -1
    rows = np.frombuffer(body, dtype=dtype)
    return [rows[f"v{c}"].astype(np.int64) for c in range(columns)]


async def refresh(
    con: Conn,
    account_id: int,
    index: AccountIndex,
    *,
    phone_keys: Iterable[int] = (),
    client_uids: Iterable[int] = (),
) -> None:
    """Re-read what a notification named and put it in the overlays."""
    keys = sorted(set(phone_keys))
    uids = set(client_uids)
    if keys:
        rows = await con.fetch(
            """SELECT p.phone_key,
                      array_agg(c.uid ORDER BY c.crm_order NULLS LAST, c.crm_id) AS uids
               FROM client_phones p JOIN clients c ON c.uid = p.client_uid AND NOT c.dropped
               WHERE p.account_id = $1 AND p.phone_key = ANY($2::int8[])
               GROUP BY p.phone_key""",
            account_id,
            keys,
        )
        found = {r["phone_key"]: tuple(r["uids"]) for r in rows}
        for key in keys:
            owners = found.get(key, ())
            index.set_phone(key, owners)
            uids.update(owners)
    if uids:
        rows = await con.fetch(
            """SELECT c.uid, c.crm_id, c.dropped,
                      coalesce(array_agg(r.ref_id ORDER BY r.position)
                               FILTER (WHERE r.kind = 'employee'), '{}') AS refs
               FROM clients c LEFT JOIN client_responsibles r ON r.client_uid = c.uid
               WHERE c.uid = ANY($1::int8[]) AND c.account_id = $2
               GROUP BY c.uid""",
            list(uids),
            account_id,
        )
        seen = set()
        for r in rows:
            seen.add(r["uid"])
            entry = None if r["dropped"] else ClientEntry(
                r["crm_id"], tuple(index.employee_slot(ref) for ref in r["refs"])
            )
            index.set_client(r["uid"], entry)
        for uid in uids - seen:
            index.set_client(uid, None)
