"""Attached recipient lists as people save them: the number column's header in their words
(accents and case folded), French Excel's CSV, and lists with no header at all."""

from __future__ import annotations

import codecs

import pytest

from mailgw.recipients import ListEntry, column_key, number_column_name, parse_list


@pytest.mark.parametrize(("header", "canonical"), [
    ("FAX", "FAX"), ("Fax", "FAX"), ("N° de fax", "FAX"), ("Numéro de fax", "FAX"),
    ("MOBILE", "MOBILE"), ("mobile", "MOBILE"), ("PORTABLE", "PORTABLE"), ("GSM", "GSM"),
    ("SMS", "SMS"), ("TEL", "TEL"), ("TÉL", "TEL"), ("Tél.", "TEL"), ("TÉLÉPHONE", "TEL"),
    ("TELEPHONE", "TEL"), ("Téléphone", "TEL"), ("téléphone ", "TEL"), ("PHONE", "TEL"),
    ("Phone number", "TEL"), ("phone_number", "TEL"), ("NUMÉRO", "NUMERO"),
    ("NUMERO", "NUMERO"), ("Number", "NUMERO"), ("NUMERO DE TELEPHONE", "TEL"),
    ("Numéro de téléphone", "TEL"), ("numero_de_telephone", "TEL"),
    ("numéro-de-téléphone", "TEL"), ("N° de téléphone", "TEL"), ("Nº de téléphone", "TEL"),
    ("No. de tél", "TEL"), ("Tél. portable", "PORTABLE"), ("Téléphone mobile", "MOBILE"),
    ("\ufeffTéléphone", "TEL"), ("Телефон", "TEL"), ("Номер телефона", "TEL"),
    ("Мобильный", "MOBILE"), ("Факс", "FAX"),
])
def test_number_column_names_people_write(header: str, canonical: str) -> None:
    assert number_column_name(header) == canonical


@pytest.mark.parametrize("header", [
    "", "Nom", "NAME", "Ville", "E-mail", "Code postal", "N°", "No", "Numéro client",
    "Date fax", "Téléphone fixe", "Commentaire", "Référence",
])
def test_headers_that_are_not_the_number_column(header: str) -> None:
    assert number_column_name(header) is None


def test_column_key_folds_accents_case_and_separators() -> None:
    assert column_key("  N° de  Téléphone__portable-") == "n de telephone portable"
    assert column_key("TÉLÉPHONE") == column_key("telephone") == "telephone"
    assert column_key("Ｔｅｌ") == "tel"  # full-width letters (NFKD)


FRENCH_EXCEL = ("Nom;Prénom;Téléphone;Ville\r\n"
                "Dupont;Éric;01 70 70 99 01;Orléans\r\n"
                "Lefèvre;Zoé;06 12 34 56 78;Besançon\r\n"
                "Durand;Noël;pas de numéro;Nîmes\r\n"
                ";;;\r\n")  # Excel writes empty rows as separators only
EXPECTED = (
    ListEntry("+33170709901", (("Nom", "Dupont"), ("Prénom", "Éric"), ("Ville", "Orléans"))),
    ListEntry("+33612345678", (("Nom", "Lefèvre"), ("Prénom", "Zoé"), ("Ville", "Besançon"))),
)


@pytest.mark.parametrize(("name", "data"), [
    ("cp1252 (Excel's CSV (;))", FRENCH_EXCEL.encode("cp1252")),
    ("UTF-8 with BOM (Excel's CSV UTF-8)", codecs.BOM_UTF8 + FRENCH_EXCEL.encode("utf-8")),
    ("UTF-8 without BOM", FRENCH_EXCEL.encode("utf-8")),
    ("UTF-16 LE with BOM, tabs (Excel's Unicode text)",
     FRENCH_EXCEL.replace(";", "\t").encode("utf-16")),
    ("UTF-16 BE with BOM", codecs.BOM_UTF16_BE + FRENCH_EXCEL.encode("utf-16-be")),
    ("UTF-32 LE with BOM", codecs.BOM_UTF32_LE + FRENCH_EXCEL.encode("utf-32-le")),
    ("BOM twice", codecs.BOM_UTF8 + ("\ufeff" + FRENCH_EXCEL).encode("utf-8")),
    ("a UTF-8 BOM on cp1252 text", codecs.BOM_UTF8 + FRENCH_EXCEL.encode("cp1252")),
    ("comma separated, quoted", FRENCH_EXCEL.replace(";", ",").replace(
        "Dupont", '"Dupont, père"').encode("cp1252")),
])
def test_a_french_excel_csv(name: str, data: bytes) -> None:
    parsed = parse_list(data, "Clients.CSV", "FR")
    assert parsed.error is None, name
    assert parsed.invalid == ("pas de numéro",), name
    if "quoted" in name:
        assert parsed.entries[0].columns[0] == ("Nom", "Dupont, père")
        assert parsed.entries[1:] == EXPECTED[1:]
    else:
        assert parsed.entries == EXPECTED, name


def test_the_canonical_order_decides_between_two_number_columns() -> None:
    data = "Téléphone;Fax\n01 70 70 99 01;01 70 70 99 02\n".encode()
    (entry,) = parse_list(data, "l.csv", "FR").entries
    assert entry == ListEntry("+33170709902", (("Téléphone", "01 70 70 99 01"),))


def test_no_header_uses_the_one_column_of_numbers() -> None:
    data = b"Dupont;0170709901;Paris\nMartin;06 12 34 56 78;Lyon\nDurand;x;Nice\n"
    parsed = parse_list(data, "l.csv", "FR")
    assert parsed.error is None
    assert parsed.entries == (
        ListEntry("+33170709901", (("COL1", "Dupont"), ("COL3", "Paris"))),
        ListEntry("+33612345678", (("COL1", "Martin"), ("COL3", "Lyon"))))
    assert parsed.invalid == ("x",)


def test_one_column_of_numbers_and_nothing_else() -> None:
    parsed = parse_list(b"0170709901\r\n0612345678\r\n", "l.csv", "FR")
    assert [e.number for e in parsed.entries] == ["+33170709901", "+33612345678"]


def test_an_unknown_header_over_the_one_column_of_numbers_names_the_others() -> None:
    data = b"Client,Contact,Code postal\nDupont,0170709901,75001\nMartin,0612345678,69001\n"
    parsed = parse_list(data, "l.csv", "FR")
    assert parsed.entries == (
        ListEntry("+33170709901", (("Client", "Dupont"), ("Code postal", "75001"))),
        ListEntry("+33612345678", (("Client", "Martin"), ("Code postal", "69001"))))


@pytest.mark.parametrize("data", [
    b"0170709901;0170709902\n0612345678;0612345679\n",  # two columns of numbers: which one?
    b"NAME;CITY\nDupont;Paris\n",  # no numbers at all
    b"Client;Montant;SIRET\nDupont;123456,78;73282932000074\n",  # numbers, not phones
])
def test_no_number_column_when_it_would_be_a_guess(data: bytes) -> None:
    parsed = parse_list(data, "l.csv", "FR")
    assert parsed.entries == () and parsed.error is not None
    assert "no number column" in parsed.error


@pytest.mark.parametrize(("name", "data", "too_long"), [
    ("n.csv", b"FAX\n0170709901\n0170709902\n", False),  # header + 2: at the limit
    ("n.csv", b"FAX\r\n0170709901\r\n0170709902", False),  # no newline at the end
    ("n.csv", b"FAX\n0170709901\n0170709902\n0170709903\n", True),
    ("n.txt", b"0170709901\n0170709902\n", False),
    ("n.txt", b"0170709901\n0170709902\n0170709903", True),
])
def test_the_line_limit_counts_recipients(name: str, data: bytes, too_long: bool) -> None:
    """`max_list_lines` numbers fit, whether the file ends with a newline or not; a CSV's
    header is not a recipient."""
    parsed = parse_list(data, name, "FR", max_lines=2)
    assert parsed.too_long is too_long
    assert too_long or len(parsed.entries) == 2
