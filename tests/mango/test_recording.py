"""Recording links are signed as the VPBX API checks them."""

from __future__ import annotations

import hashlib

from mango.recording import recording_link


def test_a_recording_link_is_signed_over_key_expiry_id_and_salt() -> None:
    sign = hashlib.sha256(b"key" + b"1800000000" + b"rec-1" + b"salt").hexdigest()
    assert recording_link("https://app.mango-office.ru/vpbx/", "key", "salt", "rec-1",
                          expires=1800000000) == (
        f"https://app.mango-office.ru/vpbx/queries/recording/link/rec-1/play/key/1800000000/{sign}")


def test_a_base_url_without_its_slash_and_a_download_link() -> None:
    link = recording_link("http://pbx.test/vpbx", "k", "s", "MToxMDA=", expires=5,
                          action="download")
    assert link.startswith("http://pbx.test/vpbx/queries/recording/link/MToxMDA=/download/k/5/")
