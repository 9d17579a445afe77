"""A create is never re-sent blind: retried only when it certainly was not applied."""

from __future__ import annotations

import asyncio
import random
import socket
from datetime import UTC, datetime

import pytest

from emulators.megaplan import MegaplanState, serve_megaplan
from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials
from megaplan.errors import MegaplanUnavailableError, MegaplanUncertainError
from megaplan.mapping import CallInfo
from tests.conftest import PASSWORD
from tests.megaplan.conftest import ClientFactory

PHONE = "+7 916 555-44-33"


async def _create(client: MegaplanClient) -> str:
    made = await client.create_client(name="Новый клиент", phones=[PHONE])
    return made.id


async def test_a_create_whose_answer_is_lost_raises_uncertain_and_is_made_once(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()  # token in hand
    mp_state.faults.lost_answer_count = 1
    with pytest.raises(MegaplanUncertainError) as info:
        await _create(client)
    assert info.value.status == 0
    assert "may or may not have been applied" in str(info.value)
    assert client.request_count == 2 + 1  # not re-sent
    assert mp_state.applied["client_created"] == 1
    [made] = mp_state.created_client_ids
    found = await client.find_contractors_by_phone("89165554433")  # what the outbox does next
    assert [c.id for c in found] == [made]
    assert found[0].phones == (PHONE,)


async def test_a_deal_whose_answer_is_lost_is_found_once_among_the_clients_deals(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.lost_answer_count = 1
    with pytest.raises(MegaplanUncertainError):
        await client.create_deal(
            program_id="1", state_id=None, contractor_id="2000002", manager_id="1000001",
            name="Входящий звонок",
        )
    assert mp_state.applied["deal_created"] == 1
    [deal] = await client.client_deals("2000002")
    assert (deal.name, deal.state_type, deal.is_open) == ("Входящий звонок", "active", True)
    assert (deal.contractor_id, deal.manager_id) == ("2000002", "1000001")
    assert deal.time_created is not None


async def test_a_comment_whose_connection_drops_is_not_resent(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.drop_count = 1  # dropped before applying, but the client cannot know
    with pytest.raises(MegaplanUncertainError):
        await client.add_comment("2000001", "Пропущенный звонок")
    assert client.request_count == 2 + 1
    assert mp_state.comments == []


async def test_a_500_on_a_create_is_uncertain_even_when_nothing_was_applied(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.write_error_count = 1
    with pytest.raises(MegaplanUncertainError) as info:
        await _create(client)
    assert info.value.status == 500
    assert client.request_count == 2 + 1
    assert mp_state.applied["client_created"] == 0


async def test_a_create_that_times_out_is_uncertain_and_may_have_been_applied(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    async with make_client(request_timeout=1.0) as client:
        await client.programs()  # the token in hand (on a busy host, maybe after a retry)
        before = client.request_count
        mp_state.faults.stall_count = 1
        mp_state.faults.stall_s = 2.0
        with pytest.raises(MegaplanUncertainError, match="TimeoutError"):
            await _create(client)
        assert client.request_count == before + 1  # not sent again
        for _ in range(250):  # the CRM finishes it after the client gave up
            if mp_state.created_client_ids:
                break
            await asyncio.sleep(0.02)
        assert len(mp_state.created_client_ids) == 1


async def test_a_create_answered_429_is_retried_after_retry_after_and_made_once(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.throttle_count = 1
    mp_state.faults.retry_after_s = 0.05
    made = await _create(client)
    assert mp_state.created_client_ids == [made]
    assert client.request_count == 2 + 2


async def test_creates_past_the_crms_rate_cap_wait_and_are_each_made_once(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    mp_state.faults.rate_cap_per_s = 10
    made = await asyncio.gather(
        *(client.create_client(name=f"Клиент {i}", phones=[f"7916000{i:04d}"]) for i in range(15))
    )
    assert sorted(c.id for c in made) == sorted(mp_state.created_client_ids)
    assert len(mp_state.created_client_ids) == 15
    assert client.request_count > 1 + 15  # some were answered 429 and sent again


async def test_a_create_while_the_crm_is_down_is_uncertain_and_a_read_gives_up(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.down_for(60)
    with pytest.raises(MegaplanUncertainError) as info:
        await _create(client)
    assert info.value.status == 503
    assert client.request_count == 2 + 1
    with pytest.raises(MegaplanUnavailableError) as read_info:
        await client.programs()
    assert not isinstance(read_info.value, MegaplanUncertainError)
    assert client.request_count == 3 + 4  # a read is retried (max_retries=3)
    assert mp_state.applied["client_created"] == 0


async def test_a_create_after_the_token_expired_renews_it_and_is_made_once(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.expire_tokens()
    made = await _create(client)
    assert mp_state.created_client_ids == [made]
    assert mp_state.tokens_issued == 2
    assert client.request_count == 2 + 3  # refused with 401, a new token, sent again


async def test_idempotent_writes_are_retried_when_their_answer_is_lost(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.lost_answer_count = 1
    updated = await client.update_client("2000003", responsible_ids=["1000002"])
    assert [r.id for r in updated.responsibles] == ["1000002"]
    assert mp_state.applied["client_updated"] == 2  # applied twice, same result
    call = CallInfo(
        provider_id="entry-9", type="in", from_phone="79165554433", to_phone="74951112233",
        time_from=datetime(2024, 3, 1, 12, tzinfo=UTC),
        time_to=datetime(2024, 3, 1, 12, 1, tzinfo=UTC),
    )
    mp_state.faults.lost_answer_count = 1
    await client.record_calls([call])
    assert mp_state.call_posts["entry-9"] == 2
    assert list(mp_state.call_infos) == ["entry-9"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_create_that_cannot_connect_is_retried_and_made_once_when_the_crm_is_back(
    mp_state: MegaplanState,
) -> None:
    port = _free_port()
    creds = MegaplanCredentials(
        base_url=f"http://127.0.0.1:{port}", username="demo", password=PASSWORD
    )
    hasty = MegaplanClient(
        creds, rate_per_second=None, max_retries=2, backoff_base=0.005, backoff_cap=0.01
    )
    patient = MegaplanClient(
        creds, rate_per_second=None, max_retries=30, backoff_base=0.05, backoff_cap=0.1,
        rng=random.Random(3),
    )

    async def come_back() -> None:
        await asyncio.sleep(0.3)
        async with serve_megaplan(mp_state, port=port):
            await asyncio.sleep(1.0)

    async with hasty, patient:
        async with serve_megaplan(mp_state, port=port):
            await hasty.programs()  # tokens in hand
            await patient.programs()
        await asyncio.sleep(0.05)  # the pooled connections are seen closed
        with pytest.raises(MegaplanUnavailableError) as info:
            await _create(hasty)
        assert not isinstance(info.value, MegaplanUncertainError)  # certainly not sent
        assert hasty.request_count == 2 + 3
        back = asyncio.create_task(come_back())
        try:
            made = await _create(patient)
        finally:
            await back
    assert patient.request_count > 2 + 1  # refused while the CRM was away
    assert mp_state.created_client_ids == [made]
