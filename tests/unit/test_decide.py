"""The decision alone (mailgw.intake.decide): no store, no sandbox, no clock; plain facts in."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailgw.codes import Code, Detail
from mailgw.documents.checks import DocumentCheck, SoundCheck
from mailgw.inbound.mail import parse_mail
from mailgw.intake.decide import decide
from mailgw.intake.routes import channel_of
from mailgw.intake.settle import cancel_code, cancel_matches, credit_refusal
from mailgw.intake.verdict import (
    Accept,
    AccountFacts,
    Ignore,
    LibraryMessage,
    MailFacts,
    Policy,
    Refuse,
    Scheduled,
    Verdict,
)
from mailgw.ops.config import Settings
from mailgw.recipients import ListEntry

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 12:00 in Paris, as in subjects.tsv
POLICY = Policy.of(Settings())  # fax@localhost, voice@localhost, domain localhost
ACCOUNT = AccountFacts(7, "FR", "Europe/Paris", "en")
PDF = b"%PDF-1.4 one page"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "


@dataclass
class Plain:
    """Lookups as plain values; records what the decision asked for."""

    password: str = "FGB45L"
    groups_: dict[str, list[str]] = field(default_factory=dict)
    library: dict[str, float] = field(default_factory=dict)
    pdfs: dict[bytes, DocumentCheck] = field(default_factory=dict)
    sounds: dict[bytes, SoundCheck] = field(default_factory=dict)
    merged: bytes | None = b"%PDF-merged"
    asked: list[str] = field(default_factory=list)
    qualities: list[str] = field(default_factory=list)  # what pictures were rendered at

    def password_ok(self, password: str) -> bool:
        self.asked.append("password")
        return password == self.password

    def groups(self, names: tuple[str, ...]) -> tuple[list[ListEntry], list[str]]:
        self.asked.append("groups")
        found = [ListEntry(n) for g in names for n in self.groups_.get(g, [])]
        return found, [g for g in names if not self.groups_.get(g)]

    def library_message(self, ref: str) -> LibraryMessage | None:
        self.asked.append("library")
        seconds = self.library.get(ref.lower())
        return None if seconds is None else LibraryMessage(ref.lower(), seconds, b"wav")

    def caller_ids(self) -> list[str]:
        self.asked.append("caller_ids")
        return []

    def pdf(self, data: bytes) -> DocumentCheck:
        self.asked.append("pdf")
        return self.pdfs.get(data, DocumentCheck(True, pages=1))

    def picture(self, data: bytes, quality: str = "high") -> DocumentCheck:
        self.asked.append("picture")
        self.qualities.append(quality)
        return self.pdfs.get(data, DocumentCheck(True, pages=1, document=b"%PDF-picture"))

    def office(self, data: bytes, filename: str | None) -> DocumentCheck:
        self.asked.append("office")
        return self.pdfs.get(data, DocumentCheck(False, error="no LibreOffice",
                                                 reason="office_unavailable"))

    def merge(self, parts: list[bytes]) -> bytes | None:
        self.asked.append("merge")
        return parts[0] if len(parts) == 1 else self.merged

    def sound(self, data: bytes, max_seconds: float) -> SoundCheck:
        self.asked.append("sound")
        return self.sounds.get(data, SoundCheck(True, duration=3.0, audio=b"wav8k"))


def mail(subject: str | None, *, attach: tuple[tuple[str, bytes, str], ...] = (),
         to: str = "fax@localhost", sender: str | None = "alice@example.com",
         headers: dict[str, str] | None = None, body: str = "Hello\n") -> EmailMessage:
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    msg["To"] = to
    if subject is not None:
        msg["Subject"] = subject
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    for name, data, ctype in attach:
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg


def run(msg: EmailMessage, lookups: Plain | None = None, *, to: str | None = None,
        account: AccountFacts | None = ACCOUNT, auth: str | None = None,
        policy: Policy = POLICY) -> Verdict:
    facts = MailFacts(parse_mail(msg.as_bytes()), (to or str(msg["To"]),), auth)
    return decide(facts, account, lookups if lookups is not None else Plain(), NOW,
                  policy=policy)


def code(v: Verdict) -> int | None:
    return v.code


A_PDF = (("doc.pdf", PDF, "application/pdf"),)


def test_a_plain_fax_is_accepted_with_its_plan() -> None:
    v = run(mail("FGB45L:0170709901:INV-7:relance", attach=A_PDF))
    assert isinstance(v, Accept) and v.code == Code.SENDING and v.plan.action == "send"
    assert v.found.numbers == ["+33170709901"] and v.found.proven
    assert v.plan.document is not None and v.plan.document.pages == 1
    assert v.found.used == ["doc.pdf (1 p.)"] and v.found.channel == "fax"


def test_deferred() -> None:
    v = run(mail("FGB45L:0170709901:::153012092026", attach=A_PDF))
    assert code(v) == Code.DEFERRED


def test_the_address_form_gives_the_number() -> None:
    """The README's form: Subject `FGB45L` to +33170709901@domain (parse said 89)."""
    v = run(mail("FGB45L", attach=A_PDF, to="+33170709901@localhost"))
    assert isinstance(v, Accept) and v.found.numbers == ["+33170709901"]
    assert code(run(mail("FGB45L", attach=A_PDF))) == Code.NO_NUMBER  # to the fax address


def test_an_invalid_address_number_is_84() -> None:
    v = run(mail("FGB45L", attach=A_PDF, to="123456@localhost"))
    assert isinstance(v, Refuse) and v.code == Code.BAD_NUMBER
    assert v.detail == Detail.of("invalid_numbers", numbers="123456")


def test_an_attached_list_gives_the_numbers() -> None:
    csv = b"NOM;FAX\nDupont;01 70 70 99 02\nDurand;0262 12 34 56\nX;abc\n"
    v = run(mail("FGB45L", attach=(*A_PDF, ("numbers.csv", csv, "text/csv"))))
    assert isinstance(v, Accept)
    assert v.found.numbers == ["+33170709902", "+262262123456"] and v.found.invalid == ["abc"]
    assert "numbers.csv" in v.found.used and v.found.recipients[0].columns == (("NOM", "Dupont"),)


def test_a_csv_without_number_column_and_a_list_too_long() -> None:
    bad = run(mail("FGB45L", attach=(("n.csv", b"NAME;CITY\nx;y\n", "text/csv"),)))
    assert isinstance(bad, Refuse) and bad.code == Code.BAD_NUMBER
    assert bad.detail is not None and bad.detail.key == "list_no_column"
    small = Policy(**{**POLICY.__dict__, "max_list_lines": 2})
    long = run(mail("FGB45L", attach=(("n.txt", b"0170709901\n0170709902\n0170709903\n",
                                       "text/plain"),)), policy=small)
    assert isinstance(long, Refuse) and long.code == Code.OVER_LIMIT


@pytest.mark.parametrize(("subject", "expected"), [
    ("Wrong1", Code.BAD_PASSWORD), ("", Code.NO_PASSWORD), (":0170709901", Code.NO_PASSWORD)])
def test_a_bad_list_is_told_only_to_a_proven_sender(subject: str, expected: Code) -> None:
    """A guesser learns nothing about the mail before the password (82 or 88, not 84/94)."""
    bad = run(mail(subject, attach=(("n.csv", b"NAME;CITY\nx;y\n", "text/csv"),)))
    assert isinstance(bad, Refuse) and bad.code == expected
    small = Policy(**{**POLICY.__dict__, "max_list_lines": 1})
    long = run(mail(subject, attach=(("n.txt", b"0170709901\n0170709902\n", "text/plain"),)),
               policy=small)
    assert isinstance(long, Refuse) and long.code == expected


def test_numbers_from_a_list_or_a_group_are_marked() -> None:
    """notify sends one summary for them (not a notice per number)."""
    typed = run(mail("FGB45L:0170709901", attach=A_PDF))
    listed = run(mail("FGB45L", attach=(*A_PDF, ("n.txt", b"0170709902\n", "text/plain"))))
    grouped = run(mail("FGB45L:@clients", attach=A_PDF),
                  Plain(groups_={"clients": ["+33170709903"]}))
    assert [v.found.from_list for v in (typed, listed, grouped)] == [False, True, True]


@pytest.mark.parametrize(("subject", "expected"), [
    ("FGB45L::INV-7::153012092027s", Code.CANCELLED),  # by ref: no numbers needed
    ("FGB45L:0170709901:::153012092027s", Code.CANCELLED),
    ("FGB45L::::153012092027s", Code.NO_NUMBER),  # neither numbers nor ref
    ("Wrong1::INV-7::153012092027s", Code.BAD_PASSWORD),
    (":::INV-7::153012092027s", Code.NO_PASSWORD),
    ("FGB45L::INV-7::1530120920s", Code.BAD_WHEN),
])
def test_cancel_by_ref_needs_no_number_and_no_document(subject: str, expected: Code) -> None:
    lookups = Plain()
    v = run(mail(subject), lookups)
    assert code(v) == expected, v.found.steps
    assert "pdf" not in lookups.asked
    if expected == Code.CANCELLED:
        assert isinstance(v, Accept) and v.plan.action == "cancel" and v.plan.document is None


def test_a_cancel_naming_a_group_matches_its_numbers() -> None:
    v = run(mail("FGB45L:@clients:::153012092027s"), Plain(groups_={"clients": ["+33170709901"]}))
    assert isinstance(v, Accept) and v.found.numbers == ["+33170709901"]


def test_nothing_is_looked_up_for_a_wrong_password() -> None:
    lookups = Plain()
    v = run(mail("Wrong1:0170709901:::153012092026", attach=A_PDF), lookups)
    assert code(v) == Code.BAD_PASSWORD and not v.found.proven
    assert lookups.asked == ["password"]


@pytest.mark.parametrize(("sender", "account", "expected"), [
    (None, ACCOUNT, Code.NO_SENDER), ("bob@example.com", None, Code.BAD_PASSWORD)])
def test_sender_and_account_come_first(sender: str | None, account: AccountFacts | None,
                                       expected: Code) -> None:
    lookups = Plain()
    assert code(run(mail("FGB45L:0170709901", sender=sender), lookups,
                    account=account)) == expected
    assert lookups.asked == []


def test_an_automatic_message_is_ignored() -> None:
    v = run(mail("Out of office", headers={"Auto-Submitted": "auto-replied"}))
    assert isinstance(v, Ignore) and v.code is None and v.reason


def test_smtp_auth_stands_for_the_password() -> None:
    v = run(mail("0170709901", attach=A_PDF), auth="alice@example.com")
    assert code(v) == Code.NO_NUMBER  # the whole Subject is the password field
    v = run(mail(":0170709901", attach=A_PDF), auth="alice@example.com")
    assert code(v) == Code.SENDING and v.found.proven


def test_a_subject_over_the_limit() -> None:
    v = run(mail("FGB45L:" + "1" * 40_000))
    assert isinstance(v, Refuse) and v.code == Code.OVER_LIMIT and not v.found.proven
    assert v.detail is not None and "32000" in v.detail.text("en")


def test_groups() -> None:
    lookups = Plain(groups_={"clients": ["+33170709902", "+33170709901"]})
    v = run(mail("FGB45L:0170709901,@clients", attach=A_PDF), lookups)
    assert isinstance(v, Accept) and v.found.numbers == ["+33170709901", "+33170709902"]
    assert v.found.duplicates == 1
    v = run(mail("FGB45L:@nobody", attach=A_PDF), lookups)
    assert isinstance(v, Refuse) and v.code == Code.BAD_GROUP
    assert v.detail is not None and v.detail.text("fr") == "groupe vide ou inconnu : @nobody"


def test_document_refusals() -> None:
    assert code(run(mail("FGB45L:0170709901"))) == Code.NO_DOCUMENT
    broken = Plain(pdfs={PDF: DocumentCheck(False, error="no trailer", reason="broken")})
    v = run(mail("FGB45L:0170709901", attach=A_PDF), broken)
    assert isinstance(v, Refuse) and v.code == Code.BAD_DOCUMENT
    assert v.detail == Detail.of("broken", name="doc.pdf")
    many = Plain(pdfs={PDF: DocumentCheck(True, pages=201)})
    assert code(run(mail("FGB45L:0170709901", attach=A_PDF), many)) == Code.OVER_LIMIT
    two = (*A_PDF, ("b.pdf", PDF + b"2", "application/pdf"))
    v = run(mail("FGB45L:0170709901", attach=two), Plain(merged=None))
    assert isinstance(v, Refuse) and v.detail == Detail.of("merge_failed")
    v = run(mail("FGB45L:0170709901", attach=two))
    assert isinstance(v, Accept) and v.plan.document is not None
    assert v.plan.document.name == "2 documents" and v.found.pages == 2


def test_unused_attachments_are_noted() -> None:
    v = run(mail("FGB45L:0170709901", attach=(*A_PDF, ("notes.doc", b"x", "application/msword"))))
    assert isinstance(v, Accept) and v.found.ignored == ["notes.doc"]


def test_too_many_recipients() -> None:
    small = Policy(**{**POLICY.__dict__, "max_recipients": 1})
    v = run(mail("FGB45L:0170709901,0170709902", attach=A_PDF), policy=small)
    assert isinstance(v, Refuse) and v.code == Code.OVER_LIMIT


def test_a_fax_has_the_account_quality_unless_its_body_names_one() -> None:
    v = run(mail("FGB45L:0170709901", attach=A_PDF))
    assert isinstance(v, Accept) and v.plan.options == {"quality": "high"} and not v.plan.notes
    normal = dataclasses.replace(ACCOUNT, quality="normal")
    v = run(mail("FGB45L:0170709901", attach=A_PDF), account=normal)
    assert isinstance(v, Accept) and v.plan.options == {"quality": "normal"}
    body = "Bonjour,\n\nqualité : meilleure\nNote: see the invoice\n\n-- \nquality: normal\n"
    v = run(mail("FGB45L:0170709901", attach=A_PDF, body=body), account=normal)
    assert isinstance(v, Accept) and v.plan.options == {"quality": "best"}
    assert not v.plan.notes  # "Note:" is the mail's text, not an unknown option


def test_an_unusable_quality_is_told_and_the_account_quality_used() -> None:
    normal = dataclasses.replace(ACCOUNT, quality="normal")
    v = run(mail("FGB45L:0170709901", attach=A_PDF, body="quality: ultra\n"), account=normal)
    assert isinstance(v, Accept) and v.plan.options == {"quality": "normal"}
    assert [n.key for n in v.plan.notes] == ["option_value"]
    assert "ultra" in v.plan.notes[0].text("en") and "best" in v.plan.notes[0].text("en")
    assert "ultra" in v.plan.notes[0].text("ru") and "ultra" in v.plan.notes[0].text("fr")


def test_pictures_are_rendered_at_the_mail_quality() -> None:
    lookups = Plain()
    png = (("scan.png", b"\x89PNG\r\n\x1a\nfake", "image/png"),)
    v = run(mail("FGB45L:0170709901", attach=png, body="качество: лучшее\n"), lookups)
    assert isinstance(v, Accept) and v.plan.options == {"quality": "best"}
    assert lookups.qualities == ["best"]


def test_a_voice_mail_has_no_quality() -> None:
    lookups = Plain(library={"promo": 12.0})
    v = run(mail("FGB45L:0170709901:promo", body="quality: best\n"), lookups,
            to="voice@localhost")
    assert isinstance(v, Accept) and "quality" not in v.plan.options
    assert [n.key for n in v.plan.notes] == ["option_unknown"]


def test_voice() -> None:
    to = "voice@localhost"
    assert code(run(mail("FGB45L:0170709901"), to=to)) == Code.NO_REF
    v = run(mail("FGB45L:0170709901:promo"), to=to)
    assert isinstance(v, Refuse) and v.code == Code.BAD_REF
    lookups = Plain(library={"promo": 12.0})
    v = run(mail("FGB45L:0170709901:promo", body="retries: 2\n\nHello"), lookups, to=to)
    assert isinstance(v, Accept) and v.plan.options == {"retries": "2"}
    assert v.plan.document is not None and v.plan.document.duration == 12.0
    assert [n.key for n in v.plan.notes] == ["options_used"]
    v = run(mail("FGB45L:0170709901", attach=(("hi.wav", WAV, "audio/wav"),)), to=to)
    assert isinstance(v, Accept) and v.plan.document is not None
    assert v.plan.document.data == b"wav8k" and v.found.used == ["hi.wav (3 s)"]
    silent = Plain(sounds={WAV: SoundCheck(False, duration=2.0, reason="sound_silent")})
    v = run(mail("FGB45L:0170709901", attach=(("hi.wav", WAV, "audio/wav"),)), silent, to=to)
    assert isinstance(v, Refuse) and v.code == Code.BAD_DOCUMENT
    assert v.detail is not None and v.detail.key == "sound_silent"


def test_a_sound_with_only_a_ref_is_stored_in_the_library() -> None:
    att = (("hi.wav", WAV, "audio/wav"),)
    v = run(mail("FGB45L::Promo-1:summer", attach=att), to="voice@localhost")
    assert isinstance(v, Accept) and v.plan.action == "store" and v.plan.store_ref == "promo-1"
    v = run(mail("Wrong1::Promo-1", attach=att), to="voice@localhost")
    assert code(v) == Code.BAD_PASSWORD
    v = run(mail("FGB45L::bad ref!", attach=att), to="voice@localhost")
    assert code(v) == Code.BAD_REF


def test_channel_of() -> None:
    assert channel_of("FAX@localhost", POLICY) == "fax"
    assert channel_of("voice@localhost", POLICY) == "voice"
    assert channel_of("+33.1.70.70.99.01@localhost", POLICY) == "fax"
    assert channel_of("12345@localhost", POLICY) is None
    assert channel_of("+33170709901@elsewhere.org", POLICY) is None


def test_every_verdict_says_why() -> None:
    for v in (run(mail("FGB45L:0170709901", attach=A_PDF)), run(mail("FGB45L"))):
        assert v.found.steps and v.found.steps[-1].startswith(str(int(v.code or 0)))


def test_commit_time_codes() -> None:
    jobs = [Scheduled(1, "INV-7", frozenset({"+33170709901"})),
            Scheduled(2, "INV-8", frozenset({"+33170709901", "+33170709902"}))]
    assert cancel_matches(jobs, [], "INV-7") == [1]
    assert cancel_matches(jobs, ["+33170709902", "+33170709901"], None) == [2]
    assert cancel_matches(jobs, ["+33170709901"], "INV-8") == [1]  # numbers win over ref
    assert cancel_matches(jobs, [], None) == []
    assert cancel_code([1]) == Code.CANCELLED and cancel_code([]) == Code.NOTHING_TO_CANCEL
    assert credit_refusal(None, 5) is None and credit_refusal(5, 5) is None
    short = credit_refusal(2, 5)
    assert short is not None and short.code == Code.NO_CREDIT
    assert short.detail is not None and short.detail.text("en") == "5 credits needed, 2 left"
