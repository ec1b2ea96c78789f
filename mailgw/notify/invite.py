"""The invitation mail: a one-time link to set the web password (`mailgw account invite`),
queued in the outbox in the transaction that stores the invitation, like every mail."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailgw.accounts import weblogin
from mailgw.accounts.accounts import AccountError
from mailgw.notify.outbox import enqueue
from mailgw.notify.render import Renderer, renderer_for
from mailgw.notify.words import local_time
from mailgw.ops.config import Settings
from mailgw.store.models import utcnow


def invite_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/invite/{token}"


def send_invite(s: Session, settings: Settings, email: str,
                renderer: Renderer | None = None) -> str:
    """Store an invitation for `email` and queue its mail; the address it goes to."""
    base_url = settings.notify.base_url
    if not base_url:
        raise AccountError("[notify] base_url is not set: the invitation needs the web "
                           "space's address for its link")
    now = utcnow()
    account, token = weblogin.invite(s, email, now)
    render = renderer or renderer_for(settings)
    ctx = {"email": account.email, "link": invite_link(base_url, token),
           "expires": local_time(now + weblogin.INVITE_TTL, account.tz, account.lang)}
    mail = render.render("invite", "invite", account.lang, account.email, ctx, {})
    enqueue(s, mail, return_path=settings.notify.return_path)
    return account.email
