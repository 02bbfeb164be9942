"""Remote mediation sessions: pin precedents, share the masked packet by link, expire and revoke it."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from logins import add_user_with_token, csrf_token, sign_in
from pypdf import PdfReader
from sqlalchemy import select, update
from test_roles import world  # noqa: F401  (the same library and users)
from test_web import SECRETS

from kb.accounts import AuditEntry, utcnow
from kb.precedents import ShareLink


@pytest.fixture
def mediator(world):  # noqa: F811
    client = world[0].test_client()
    assert sign_in(client, "mediator-lucheng").status_code == 302
    return client


def _post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, "/sessions"), **data})


def _new_session(client, title="楼上漏水调解") -> int:
    response = _post(client, "/sessions", title=title, summary="楼上漏水，双方就赔偿金额争执。")
    assert response.status_code == 302
    return int(re.search(r"/sessions/(\d+)$", response.headers["Location"]).group(1))


def _share(client, session_id: int, days=7) -> str:
    assert _post(client, f"/sessions/{session_id}/links", days=days).status_code == 302
    page = client.get(f"/sessions/{session_id}").get_data(as_text=True)
    return re.findall(r'value="http://localhost(/share/[^"]+)"', page)[0]


def test_pin_note_share_revoke(world, mediator):  # noqa: F811
    ids = world[1]
    session_id = _new_session(mediator)
    case_page = mediator.get(f"/cases/{ids[0]}").get_data(as_text=True)
    assert "加入调解会话" in case_page and "张伟明" in case_page  # the mediator's own county: unmasked
    for case_id, note in ((ids[0], "与本案同为借款分期归还"), (ids[3], "漏水先勘查后调解")):
        response = _post(mediator, "/sessions/pins", session_id=session_id, case_id=case_id, note=note)
        assert response.status_code == 302
    page = mediator.get(f"/sessions/{session_id}").get_data(as_text=True)
    assert "漏水先勘查后调解" in page and page.count('class="pin"') == 2
    pin_ids = re.findall(rf"/sessions/{session_id}/pins/(\d+)/delete", page)
    _post(mediator, f"/sessions/{session_id}/pins/{pin_ids[0]}", note="借款纠纷：分五期还清")

    link = _share(mediator, session_id)
    token = link.rsplit("/", 1)[1]
    assert len(token) >= 43, "32 random bytes"
    party = world[0].test_client()  # a fresh browser: nobody signed in
    shared = party.get(link)
    text = shared.get_data(as_text=True)
    assert shared.status_code == 200 and shared.headers["Cache-Control"] == "no-store"
    assert "借款纠纷：分五期还清" in text and "漏水先勘查后调解" in text and "张某与李某民间借贷纠纷" in text
    assert not {s for s in SECRETS if s in text}, "the packet is masked even though its mediator may see parties"
    assert "退出" not in text and 'name="csrf-token"' not in text
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', text).group(1)
    assert party.get(stylesheet).status_code == 200, "the packet is styled for a party who is not signed in"

    link_id = re.search(rf"/sessions/{session_id}/links/(\d+)/revoke", mediator.get(f"/sessions/{session_id}")
                        .get_data(as_text=True)).group(1)
    assert _post(mediator, f"/sessions/{session_id}/links/{link_id}/revoke").status_code == 302
    gone = party.get(link)
    assert gone.status_code == 410 and "分享链接已撤销" in gone.get_data(as_text=True)

    with world[0].extensions["casekb"].db.sessions() as db_session:
        actions = [e.action for e in db_session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert {"pin", "share", "share-view", "revoke"} <= set(actions)


def test_expired_and_unknown_links_answer_with_a_clear_page(world, mediator):  # noqa: F811
    session_id = _new_session(mediator)
    link = _share(mediator, session_id, days=1)
    with world[0].extensions["casekb"].db.transaction() as db_session:
        db_session.execute(update(ShareLink).where(ShareLink.token == link.rsplit("/", 1)[1])
                           .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    party = world[0].test_client()
    expired = party.get(link)
    assert expired.status_code == 410 and "分享链接已过期" in expired.get_data(as_text=True)
    unknown = party.get("/share/not-a-real-token")
    assert unknown.status_code == 404 and "找不到这个分享链接" in unknown.get_data(as_text=True)
    assert "Traceback" not in expired.get_data(as_text=True) + unknown.get_data(as_text=True)


def test_a_session_belongs_to_its_mediator(world, mediator):  # noqa: F811
    session_id = _new_session(mediator, "仅本人可见")
    other = world[0].test_client()
    sign_in(other, "mediator-ouhai")
    assert other.get(f"/sessions/{session_id}").status_code == 403
    assert "仅本人可见" not in other.get("/sessions").get_data(as_text=True)
    pin = _post(other, "/sessions/pins", session_id=session_id, case_id=world[1][0], note="")
    assert pin.status_code == 400, "someone else's session is not a choice"
    admin = world[0].test_client()
    sign_in(admin, "admin")
    assert admin.get(f"/sessions/{session_id}").status_code == 200


def test_the_preview_is_the_packet_as_parties_see_it(world, mediator):  # noqa: F811
    session_id = _new_session(mediator)
    _post(mediator, "/sessions/pins", session_id=session_id, case_id=world[1][0], note="")
    preview = mediator.get(f"/sessions/{session_id}/packet").get_data(as_text=True)
    assert "张某与李某民间借贷纠纷" in preview and not {s for s in SECRETS if s in preview}
    assert "打印 / 存为 PDF" in preview


def test_token_holders_without_sessions_role_cannot_share(world):  # noqa: F811
    token = add_user_with_token(world[0].extensions["casekb"].db, "trainer-2", "trainer")
    client = world[0].test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert client.get("/sessions").status_code == 403


def _pdf_text(response) -> str:
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)


def test_the_packet_downloads_as_a_masked_pdf_until_the_link_dies(world, mediator):  # noqa: F811
    session_id = _new_session(mediator, "借款分期还款调解")
    _post(mediator, "/sessions/pins", session_id=session_id, case_id=world[1][0], note="分期归还的方案可参考")
    link = _share(mediator, session_id)
    party = world[0].test_client()
    assert f'href="{link}/packet.pdf"' in party.get(link).get_data(as_text=True)
    response = party.get(f"{link}/packet.pdf")
    assert response.headers["Cache-Control"] == "no-store" and "attachment" in response.headers["Content-Disposition"]
    text = _pdf_text(response)
    for shown in ("借款分期还款调解", "张某与李某民间借贷纠纷", "民间借贷纠纷", "2024-03-05", "分期归还的方案可参考",
                  "纠纷事实", "申请人张某"):
        assert shown in text
    assert not {s for s in SECRETS if s in text}, "names, ID number, phones and address are masked"

    session_page = mediator.get(f"/sessions/{session_id}").get_data(as_text=True)
    assert f'href="/sessions/{session_id}/packet.pdf"' in session_page
    own_copy = _pdf_text(mediator.get(f"/sessions/{session_id}/packet.pdf"))
    assert "张某与李某民间借贷纠纷" in own_copy and "链接有效期" not in own_copy
    assert world[0].test_client().get(f"/sessions/{session_id}/packet.pdf").status_code == 302, "sign-in first"

    link_id = re.search(rf"/sessions/{session_id}/links/(\d+)/revoke", session_page).group(1)
    _post(mediator, f"/sessions/{session_id}/links/{link_id}/revoke")
    gone = party.get(f"{link}/packet.pdf")
    assert gone.status_code == 410 and "分享链接已撤销" in gone.get_data(as_text=True)
    assert party.get("/share/not-a-real-token/packet.pdf").status_code == 404
    with world[0].extensions["casekb"].db.sessions() as db_session:
        downloads = [(e.target, e.detail) for e in db_session.scalars(
            select(AuditEntry).where(AuditEntry.action == "share-pdf").order_by(AuditEntry.id))]
    assert downloads == [(f"link:{link_id}", {}), (f"link:{link_id}", {"refused": "revoked"})]
