"""phonenumbers' `parse` + `is_valid_number` + E.164 for a string of digits, at list speed.

Why: a 100,000-number list spent about 65 µs a number in phonenumbers (60 % of it in
`parse`, which first normalises any text a person may type, Unicode digits and all, twice),
so reading it took longer than an SMTP client should wait. The strings here are already
compact (`recipients.normalize_number` keeps only `+` and ASCII digits), so this takes
`parse`'s own steps for that case, in its order, with its private helpers, and checks
validity with each number type's pattern compiled once. Anything off the common path
(a national number that starts with the region's international prefix or its country
code, a leading zero kept after the national prefix, a country code shared by several
regions or non-geographic) goes to phonenumbers itself. `tests/unit/test_e164.py` holds
the two to the same answers on a wide sample. Pure.
"""

from __future__ import annotations

import re
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc
from phonenumbers import phonenumberutil as pnu

# The number types `_number_type_helper` tries before fixed line and mobile; with the
# general description, any match makes a number valid.
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
          "uan", "voicemail")
_compiled = cache(re.compile)
_NON_GEO = "001"  # phonenumbers' region code for +800, +808, +870, +881…
_REJECTED_LENGTHS = (pnu.ValidationResult.TOO_SHORT, pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                     pnu.ValidationResult.INVALID_LENGTH)


def slow_e164(text: str, region: str | None) -> str | None:
    """phonenumbers itself: the reference, and the way for the uncommon cases."""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def valid_e164(compact: str, region: str | None) -> str | None:
    """`slow_e164(compact, region)` for `compact` = `+digits` (region None) or `digits`
    (national, in `region`)."""
    if compact.startswith("+"):
        cc, national = pnu._extract_country_code(compact[1:])
        if cc == 0:
            return None
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(
            cc, pnu.region_code_for_country_code(cc))
        if metadata is None:
            return slow_e164(compact, region)
    else:
        metadata = PhoneMetadata.metadata_for_region(region or "", None)
        own_cc = None if metadata is None else metadata.country_code
        if metadata is None or own_cc is None or _starts_international(compact, metadata):
            return slow_e164(compact, region)
        cc, national = own_cc, compact
    if len(national) < pnu._MIN_LENGTH_FOR_NSN:
        return None
    stripped = _strip_national_prefix(national, metadata)
    if pnu._test_number_length(stripped, metadata) not in _REJECTED_LENGTHS:
        national = stripped
    if not pnu._MIN_LENGTH_FOR_NSN <= len(national) <= pnu._MAX_LENGTH_FOR_NSN:
        return None
    regions = pnu.COUNTRY_CODE_TO_REGION_CODE.get(cc)
    if national.startswith("0") or regions is None or len(regions) != 1 or (
            regions[0] == _NON_GEO):
        return slow_e164(compact, region)
    own = PhoneMetadata.metadata_for_region(regions[0], None)
    if own is None or own.country_code != cc:
        return None
    return f"+{cc}{national}" if _valid_for(own, national) else None


def _starts_international(digits: str, metadata: PhoneMetadata) -> bool:
    """A national string that parse might read as international: its international prefix,
    or its country code without the `+`."""
    idd = metadata.international_prefix
    if idd is not None and _compiled(idd).match(digits):
        return True
    return digits.startswith(str(metadata.country_code))


def _strip_national_prefix(number: str, metadata: PhoneMetadata) -> str:
    """`_maybe_strip_national_prefix_carrier_code(number, metadata)[1]` (the carrier code is
    not kept); a region that rewrites its prefix (a transform rule) goes to it."""
    prefix = metadata.national_prefix_for_parsing
    if not number or not prefix:
        return number
    if metadata.national_prefix_transform_rule:
        return pnu._maybe_strip_national_prefix_carrier_code(number, metadata)[1]
    found = _compiled(prefix).match(number)
    if found is None:
        return number
    rest = number[found.end():]
    general = metadata.general_desc
    pattern = _compiled(general.national_number_pattern) if general is not None and (
        general.national_number_pattern) else None
    if pattern is not None and pattern.fullmatch(number) and not pattern.fullmatch(rest):
        return number  # those digits belong to a valid number: not a prefix
    return rest


def _valid_for(metadata: PhoneMetadata, nsn: str) -> bool:
    """`_number_type_helper(nsn, metadata) != UNKNOWN`: the general description, then any
    type allowing this length (one alternation of their patterns, compiled once)."""
    key = (id(metadata), len(nsn))  # metadata objects live as long as the process
    found = _BY_LENGTH.get(key)
    if found is None:
        found = _BY_LENGTH[key] = _patterns(metadata, len(nsn))
    general, types = found
    return general is not None and types is not None and general.fullmatch(nsn) is not None \
        and types.fullmatch(nsn) is not None


_BY_LENGTH: dict[tuple[int, int], tuple[re.Pattern[str] | None, re.Pattern[str] | None]] = {}


def _patterns(metadata: PhoneMetadata, length: int
              ) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """(the general pattern, the alternation of the types' patterns) for numbers of this
    length; None where nothing can match (no pattern, or the length is not possible)."""
    def usable(d: PhoneNumberDesc | None) -> str | None:
        if d is None or not d.national_number_pattern:
            return None  # phonenumbers: no pattern never matches
        if d.possible_length and length not in d.possible_length:
            return None
        return str(d.national_number_pattern)

    types = [getattr(metadata, t) for t in _TYPES] + [metadata.fixed_line]
    if not metadata.same_mobile_and_fixed_line_pattern:
        types.append(metadata.mobile)  # the same pattern as fixed line: already tried
    general = usable(metadata.general_desc)
    either = [p for p in map(usable, types) if p is not None]
    return (None if general is None else re.compile(general),
            re.compile("|".join(f"(?:{p})" for p in either)) if either else None)
