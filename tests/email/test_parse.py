"""Parser unit tests: one small case per rule (charsets, headers, structure, quotes, flags, ids)."""

from __future__ import annotations

import base64

import pytest

from adapters.email import mime
from adapters.email.htmlsafe import html_to_text, is_tracking_pixel, sanitize_html
from adapters.email.parse import FILTERS, MalformedEmail, ParseOptions, parse_message
from adapters.email.quotes import split_quotes
from tests.email.conftest import FIXTURES, OUR_ADDRESS, OUR_DOMAIN

OPTIONS = ParseOptions(own_addresses=frozenset({OUR_ADDRESS}), own_domains=frozenset({OUR_DOMAIN}))


def raw(headers: str, body: bytes | str = "Hola, una consulta.\n") -> bytes:
    head = headers.strip("\n").replace("\n", "\r\n").encode()
    if "From:" not in headers:
        head = b"From: Ana <ana@example.com>\r\n" + head
    return head + b"\r\n\r\n" + (body.encode() if isinstance(body, str) else body)


def parse(data: bytes, **opts: object):
    return parse_message(data, "atencion", options=ParseOptions(**{**OPTIONS.__dict__, **opts}))


def test_filters_are_an_ordered_list_of_named_steps() -> None:
    names = [name for name, _ in FILTERS]
    assert names[0] == "prepare_raw" and names[-1] == "thread_hints"
    assert names.index("collect_parts") < names.index("detect_bounce") < names.index("derive_text")


# -- charsets ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("declared,data,expected", [
    ("iso-8859-1", "Señor, ¿cómo está?".encode("latin-1"), "Señor, ¿cómo está?"),
    ("iso-8859-1", "“comillas” – guión".encode("cp1252"), "“comillas” – guión"),  # mislabelled Windows-1252
    ("windows-1252", "“hola”…".encode("cp1252"), "“hola”…"),
    ("x-unknown", "trámite".encode(), "trámite"),  # unknown label: UTF-8 first
    (None, "Señores".encode("latin-1"), "Señores"),  # 8bit without a charset: detection → cp1252
    ("us-ascii", "está".encode(), "está"),  # wrong label, UTF-8 bytes
    ("utf-8", "ñandú".encode("latin-1"), "ñandú"),  # declared UTF-8 but Latin-1 bytes
    ("ks_c_5601-1987", "스티해".encode("cp949"), "스티해"),
    ("koi8-r", "Привет".encode("koi8-r"), "Привет"),
])
def test_body_charsets(declared: str | None, data: bytes, expected: str) -> None:
    assert mime.decode_bytes(data, declared).text == expected


def test_cyrillic_without_label_is_detected() -> None:
    text = "Добрый день, я хотел бы узнать о состоянии моего заявления на получение паспорта."
    assert mime.decode_bytes(text.encode("cp1251"), None).text == text


def test_windows_1252_body_in_a_mail() -> None:
    m = parse(raw("Subject: x\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit",
                  "Dijo “sí” – ok\n".encode("cp1252")))
    assert m.text == "Dijo “sí” – ok"


# -- headers -------------------------------------------------------------------------------------------------------
def test_rfc2047_adjacent_words_lose_the_whitespace_between_them() -> None:
    value = "=?UTF-8?Q?Solicitud_de_?=\n =?UTF-8?B?aW5mb3JtYWNpw7Nu?=\n =?ISO-8859-1?Q?_en_Tacuaremb=F3?="
    assert mime.decode_header(value) == "Solicitud de información en Tacuarembó"


def test_rfc2047_multibyte_character_split_across_words() -> None:
    data = "ñ".encode()  # 2 bytes, one in each word
    a, b = base64.b64encode(data[:1]), base64.b64encode(data[1:])
    assert mime.decode_header(f"=?utf-8?B?{a.decode()}?= =?utf-8?B?{b.decode()}?=") == "ñ"


def test_rfc2047_unknown_charset_falls_back() -> None:
    assert mime.decode_header("=?x-bogus?Q?tr=C3=A1mite?=") == "trámite"


def test_raw_8bit_header_is_decoded_not_replaced() -> None:
    m = parse(raw("Subject: =?utf-8?q?hola?=").replace(b"From: Ana", "From: Ingo Lütkebohle".encode("latin-1")))
    assert m.sender.display_name == "Ingo Lütkebohle"


def test_rfc2231_filename_and_continuations() -> None:
    m = parse((FIXTURES / "mikel-mail__japanese_attachment_long_name.eml").read_bytes())
    assert m.attachments[0].filename == "かきくけこ" * 5 + ".txt"
    m = parse((FIXTURES / "mikel-mail__attachment_with_quoted_filename.eml").read_bytes())
    assert m.attachments[0].filename == "Eelanalüüsi päring.jpg"
    assert m.subject == "Eelanalüüsi päring"


def test_long_subject_is_cut_and_marked() -> None:
    m = parse((FIXTURES / "flanker__long-header.eml").read_bytes(), max_subject_chars=200)
    assert len(m.subject or "") == 200 and m.meta["subject_truncated"] is True


# -- structure -----------------------------------------------------------------------------------------------------
def test_html_only_mail_gets_readable_text() -> None:
    html = ("<html><head><title>t</title><style>p{}</style></head><body><p>Hola,&nbsp;necesito <b>ayuda</b>.</p>"
            "<ul><li>uno</li><li>dos</li></ul><blockquote>citado</blockquote></body></html>")
    m = parse(raw("Subject: x\nContent-Type: text/html; charset=utf-8", html))
    assert m.text.startswith("Hola, necesito ayuda.\n- uno\n- dos")
    assert m.meta["text_from_html"] is True


def test_html_to_text_marks_blockquotes_as_quotes() -> None:
    assert html_to_text("<p>nuevo</p><blockquote><p>viejo</p><blockquote>más viejo</blockquote></blockquote>") == \
        "nuevo\n> viejo\n> > más viejo"


def test_inline_cid_image_is_embedded_not_a_normal_attachment() -> None:
    m = parse((FIXTURES / "mikel-mail__attachment_message_rfc822_inline_image.eml").read_bytes())
    inline = [a for a in m.attachments if a.content_id]
    assert [(a.filename, a.content_type) for a in inline] == [("img.png", "image/png")]
    assert 'src="cid:' in (m.html or "")
    assert [a.filename for a in m.attachments if not a.content_id] == ["Testmail.eml"]


def test_attachment_over_the_limit_is_recorded_as_skipped() -> None:
    m = parse((FIXTURES / "es06_adjuntos_pdf_jpeg.eml").read_bytes(), max_attachment_bytes=600)
    by_name = {a.filename: a for a in m.attachments}
    assert by_name["constancia_domicilio.pdf"].skipped == "too_large"
    assert by_name["constancia_domicilio.pdf"].data is None and by_name["constancia_domicilio.pdf"].size == 948
    assert by_name["cédula_frente.jpg"].skipped is None and by_name["cédula_frente.jpg"].data


def test_forwarded_rfc822_message_is_attached_and_shown() -> None:
    m = parse((FIXTURES / "flanker__enclosed.eml").read_bytes())
    assert m.attachments[0].content_type == "message/rfc822"
    assert m.meta["forwarded"][0]["from"] == "dan@example.com"
    assert "Mensaje adjunto" in m.text and "Kirk Douglas" in m.text


def test_illegal_unquoted_boundary_is_repaired() -> None:
    m = parse((FIXTURES / "mikel-mail__raw_email_with_illegal_boundary.eml").read_bytes())
    assert m.text.startswith("Hello\nThis is an outlook test")
    assert m.html is not None


def test_leading_blank_line_and_missing_final_boundary() -> None:
    assert parse((FIXTURES / "flanker__enclosed.eml").read_bytes()).sender.value == "bob@example.net"
    assert parse((FIXTURES / "flanker__missing-final-boundary.eml").read_bytes()).text == "Some body"


# -- quoted history and signatures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,visible,rule", [
    ("Gracias!\n\nEl lun, 3 nov 2025 a las 10:02, Atención <a@b.uy> escribió:\n> hola\n", "Gracias!", "attribution"),
    ("Gracias!\n\nEl lun., 3 nov 2025 a las 10:02, Atención Ciudadana <\natencion@example.gub.uy> escribió:\n\n"
     "> hola\n", "Gracias!", "attribution"),
    ("Hello\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan <m@x.com> wrote:\n\n> Hi\n", "Hello", "attribution"),
    ("Dale\n\nEl 3 nov 2025, a las 10:02, Atención <a@b.uy> escribió:\n\n> texto\n", "Dale", "attribution"),
    ("Ok\n\n________________________________\nDe: Atención <a@b.uy>\nEnviado: lunes, 3 de noviembre de 2025\n"
     "Para: Diego\nAsunto: x\n\nviejo", "Ok", "outlook_block"),
    ("Ok\n\nFrom: x@y.com [mailto:x@y.com]\nSent: March-09-12 4:22 PM\nTo: Dan\nSubject: y\n\nold", "Ok",
     "outlook_block"),
    ("Bien\n\n-----Mensaje original-----\nDe: a\nviejo", "Bien", "original_message"),
    ("Listo\n\n> citado\n> más\n", "Listo", "trailing_quote_block"),
])
def test_quote_styles(text: str, visible: str, rule: str) -> None:
    split = split_quotes(text)
    assert (split.visible, split.rule) == (visible, rule)
    assert split.quoted


def test_inline_answers_between_quotes_are_kept() -> None:
    text = "On Mon, Bob wrote:\n> pregunta uno\nrespuesta uno\n> pregunta dos\nrespuesta dos\n"
    assert split_quotes(text).visible == text.strip()


def test_forward_is_content_not_history() -> None:
    text = "Les reenvío esto.\n\n---------- Forwarded message ---------\nDe: Juan <j@x.com>\nDate: hoy\n\nTexto"
    split = split_quotes(text, "Fwd: Reclamo")
    assert split.visible == text and split.quoted == ""
    outlook_fw = "Reenvío.\n\nDe: Juan <j@x.com>\nEnviado: hoy\nAsunto: x\n\nTexto del vecino"
    assert split_quotes(outlook_fw, "RV: x").visible == outlook_fw


@pytest.mark.parametrize("text,visible,signature", [
    ("Hola\nconsulta\n-- \nAna Pérez\nTel 099", "Hola\nconsulta", "-- \nAna Pérez\nTel 099"),
    ("Hola\n\nEnviado desde mi iPhone", "Hola", "Enviado desde mi iPhone"),
    ("Hola\n\nSent from my Galaxy", "Hola", "Sent from my Galaxy"),
])
def test_signatures(text: str, visible: str, signature: str) -> None:
    split = split_quotes(text)
    assert (split.visible, split.signature) == (visible, signature)


def test_only_quoted_text_keeps_everything_visible() -> None:
    assert split_quotes("> solo cita\n> nada más").visible == "> solo cita\n> nada más"


def test_full_quoted_text_is_kept_in_meta() -> None:
    m = parse((FIXTURES / "es04_asunto_con_ticket.eml").read_bytes())
    assert "Estimado Diego" in m.meta["quoted_text"] and "Estimado Diego" not in m.text
    assert m.meta["quote_rule"] == "outlook_block"


# -- automated mail ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [
    "Auto-Submitted: auto-replied", "Auto-Submitted: auto-generated", "X-Autoreply: yes", "X-Autorespond: vacation",
    "Precedence: auto_reply", "Subject: Respuesta automática: hola", "Subject: Automatic reply: hi",
    "Subject: Fuera de la oficina: vuelvo el lunes",
])
def test_each_auto_reply_signal_alone(header: str) -> None:
    m = parse(raw(header if header.startswith("Subject") else f"Subject: x\n{header}"))
    assert "auto_reply" in m.flags


@pytest.mark.parametrize("header", ["Auto-Submitted: no", "X-Auto-Response-Suppress: All",
                                    "Subject: Consulta sobre respuesta automática"])
def test_not_auto_replies(header: str) -> None:
    m = parse(raw(header if header.startswith("Subject") else f"Subject: x\n{header}"))
    assert "auto_reply" not in m.flags


def test_mailing_list_is_bulk_not_auto_reply() -> None:
    m = parse((FIXTURES / "flanker__from-encoding.eml").read_bytes())
    assert m.flags == ["bulk"]


def test_bounce_dsn_is_flagged_and_threads_to_the_returned_mail() -> None:
    m = parse((FIXTURES / "flanker__bounce-zed.eml").read_bytes())
    assert m.flags == ["bounce"]
    assert m.meta["bounce"]["recipients"][0]["status"] == "5.1.1"
    assert "20090708054735.GC7578@example.com" in m.hints.references


def test_mailer_daemon_notice_without_dsn_is_a_bounce() -> None:
    m = parse(raw("From: MAILER-DAEMON@mx.example.com\nSubject: Undelivered Mail Returned to Sender"))
    assert m.flags == ["bounce"]
    assert "bounce" in parse(raw("Subject: hola\nX-Failed-Recipients: x@y.com")).flags


@pytest.mark.parametrize("headers,flags", [
    (f"From: Nosotros <{OUR_ADDRESS}>\nSubject: x", ["own_message"]),
    (f"Subject: x\nMessage-ID: <m_abc@{OUR_DOMAIN}>", ["own_message"]),
    (f"Subject: x\nX-Inbox-Loop: {OUR_ADDRESS}", ["loop"]),
    ("Subject: x\nX-Inbox-Loop: otra@agencia.example", []),
    (f"Subject: x\nIn-Reply-To: <m_abc@{OUR_DOMAIN}>", []),  # a citizen's reply to us is not our mail
])
def test_own_messages_and_loops(headers: str, flags: list[str]) -> None:
    assert parse(raw(headers)).flags == flags


# -- identity and errors -------------------------------------------------------------------------------------------
def test_missing_message_id_gets_a_stable_synthetic_one() -> None:
    data = (FIXTURES / "es08_sin_message_id.eml").read_bytes()
    a, b = parse(data), parse(b"Received: from relay\r\n" + data)
    assert a.external_id == b.external_id and a.external_id.endswith("@synthetic.invalid")
    assert parse(data.replace(b"Hola", b"Chau")).external_id != a.external_id


def test_ticket_tag_from_subject() -> None:
    assert parse(raw("Subject: RE: [#1042] Partida")).hints.ticket_number == 1042
    assert parse(raw("Subject: Consulta #1042")).hints.ticket_number is None


@pytest.mark.parametrize("data", [b"", b"   \r\n\r\n", b"\x00\x01\x02 no headers here", b"Subject: hi\r\n\r\nbody"])
def test_not_a_mail_raises_malformed(data: bytes) -> None:
    with pytest.raises(MalformedEmail):
        parse_message(data, "atencion")


def test_sender_falls_back_to_sender_header() -> None:
    m = parse_message(b"Sender: lista@example.org\r\nSubject: x\r\n\r\nhola\r\n", "atencion")
    assert m.sender.value == "lista@example.org"


# -- sanitizer -----------------------------------------------------------------------------------------------------
def test_remote_images_only_when_allowed_and_pixels_never() -> None:
    html = '<p>x</p><img src="https://img.example/a.png" width="300"><img src="https://t.example/p.gif" width="1">'
    assert "img.example" not in sanitize_html(html)
    allowed = sanitize_html(html, allow_remote_images=True)
    assert "img.example/a.png" in allowed and "t.example" not in allowed


@pytest.mark.parametrize("tag,pixel", [
    ('<img src="x" width="1" height="1">', True), ('<img src="x" style="display:none">', True),
    ('<img src="x" style="width:1px;height:1px">', True), ('<img src="x" width="320">', False),
])
def test_tracking_pixel_detection(tag: str, pixel: bool) -> None:
    assert is_tracking_pixel(tag) is pixel


def test_sanitizer_keeps_safe_formatting_and_drops_dangerous_css() -> None:
    out = sanitize_html('<p style="color:red;position:fixed;background:url(javascript:x)">a</p><a href="cid:1">b</a>')
    assert 'style="color:red"' in out and "position" not in out and "url(" not in out


def test_mutated_fixtures_parse_or_raise_malformed_only() -> None:
    import random

    rng = random.Random(3)
    files = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    for _ in range(400):
        data = bytearray(rng.choice(files))
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = data[: rng.randrange(len(data))]
        try:
            parse_message(bytes(data), "atencion")
        except MalformedEmail:
            pass
