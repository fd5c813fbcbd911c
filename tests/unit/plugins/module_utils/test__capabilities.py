# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import (
    CapabilityError,
    CapabilitySet,
    check_storable,
    combine,
    format_capabilities,
    parse_capabilities,
    storable_problem,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import (
    ACCEPTED_NAMES,
    CAP_IPC_LOCK,
    CAPABILITY_NAMES,
)

FLAG_COMBINATIONS = ("e", "i", "p", "ei", "ep", "ip", "eip")
IPC_LOCK_EP = {CAP_IPC_LOCK: "ep"}


def flags_of(text: str, **kwargs) -> dict:
    return parse_capabilities(text, **kwargs).as_flags()


# --- spellings -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        "cap_ipc_lock=ep",
        "cap_ipc_lock=+ep",
        "cap_ipc_lock+ep",
        "CAP_IPC_LOCK=ep",
        "Cap_Ipc_Lock=ep",
        "cap_ipc_lock=pe",
        "cap_ipc_lock=epp",
        "cap_ipc_lock=e+p",
        "cap_ipc_lock+e+p",
        "cap_ipc_lock=eip-i",
        "cap_ipc_lock=p cap_ipc_lock+e",
        "  cap_ipc_lock=ep\n",
        "14=ep",
        "0xe=ep",
        "0XE=ep",
        "016=ep",
        "cap_chown=ep cap_ipc_lock=ep cap_chown=",
        "=ep all-ep cap_ipc_lock+ep",
    ],
)
def test_every_spelling_of_cap_ipc_lock_ep_is_the_same_set(text):
    assert flags_of(text) == IPC_LOCK_EP
    assert format_capabilities(parse_capabilities(text)) == "cap_ipc_lock=ep"


@pytest.mark.parametrize(
    "text",
    [
        "cap_ipc_lock,cap_net_bind_service=ep",
        "cap_net_bind_service,cap_ipc_lock=ep",
        "cap_ipc_lock=ep cap_net_bind_service=ep",
        "cap_ipc_lock+ep\tcap_net_bind_service+pe",
        "CAP_NET_BIND_SERVICE,14+ep",
        "10,14=ep",
    ],
)
def test_several_capabilities_in_any_order_are_the_same_set(text):
    assert flags_of(text) == {10: "ep", 14: "ep"}
    assert format_capabilities(parse_capabilities(text)) == "cap_net_bind_service,cap_ipc_lock=ep"


ALL_EP = {number: "ep" for number in range(41)}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", {}),
        ("=", {}),
        ("   ", {}),
        ("cap_ipc_lock=", {}),
        ("=ep", ALL_EP),
        ("all=ep", ALL_EP),
        ("ALL+ep", ALL_EP),
        ("=ep cap_sys_admin-ep", {n: "ep" for n in range(41) if n != 21}),
        ("all=ep cap_sys_admin-e", {**ALL_EP, 21: "p"}),
        ("cap_ipc_lock=ep cap_net_raw+p", {13: "p", 14: "ep"}),
        ("cap_ipc_lock=i", {14: "i"}),
        ("cap_ipc_lock=epi", {14: "eip"}),
        ("cap_ipc_lock=ep+i-p", {14: "ei"}),
        ("cap_ipc_lock-p+e", {14: "e"}),
        ("41=ep", {41: "ep"}),
        ("0x3f=p", {63: "p"}),
        ("all,41=p", {**{n: "p" for n in range(41)}, 41: "p"}),
        # libcap's 'all' replaces what the list named before it.
        ("41,all=p", {n: "p" for n in range(41)}),
        ("cap_ipc_lock=ep cap_ipc_lock-p", {14: "e"}),
    ],
)
def test_clauses_apply_in_order_as_libcap_does(text, expected):
    assert flags_of(text) == expected


# --- malformed texts -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, fragment",
    [
        ("cap_ipc_lock", "no operator and flags"),
        ("cap_ipc_lock = ep", "no operator and flags"),
        ("cap_ipc_lockx=ep", "unknown capability 'cap_ipc_lockx'"),
        ("cap_14=ep", "unknown capability 'cap_14'"),
        ("allx=ep", "unknown capability 'allx'"),
        ("_x=ep", "unknown capability '_x'"),
        ("14x=ep", "unknown capability '14x'"),
        ("08=ep", "unknown capability '08'"),
        ("64=ep", "capability number '64'"),
        ("0x40=ep", "is too large"),
        ("cap_ipc_lock=EP", "flags are lowercase e, i, p"),
        ("cap_ipc_lock=epx", "'x' at position 16 where a flag"),
        ("cap_ipc_lock=ep;", "';' at position 16"),
        ("cap_ipc_lock=ep,", "',' at position 16"),
        ("cap_ipc_lock=e=p", "only the first operator of a clause may be '='"),
        ("cap_ipc_lock==p", "only the first operator of a clause may be '='"),
        ("cap_ipc_lock=ep=", "only the first operator of a clause may be '='"),
        ("+ep", "'+' at position 1 without a capability list"),
        ("-ep", "'-' at position 1 without a capability list"),
        ("cap_ipc_lock+", "'+' without flags"),
        ("cap_ipc_lock=+", "'+' without flags"),
        ("cap_ipc_lock=ep-", "'-' without flags"),
        ("cap_ipc_lock,=ep", "',' at position 13 not followed by a capability"),
        ("cap_ipc_lock,,cap_chown=ep", "not followed by a capability"),
        (",cap_ipc_lock=ep", "',' at position 1 where '=', '+' or '-' was expected"),
        ("=ep+i", "after a clause without a capability list"),
        ("cap_ipc_lock@ep", "'@' at position 13 where '=', '+' or '-' was expected"),
    ],
)
def test_malformed_text_fails_naming_the_option_and_the_problem(text, fragment):
    with pytest.raises(CapabilityError) as caught:
        parse_capabilities(text)
    message = str(caught.value)
    assert message.startswith("capability: ")
    assert fragment in message
    assert repr(text) in message


def test_unknown_name_lists_what_is_accepted():
    with pytest.raises(CapabilityError) as caught:
        parse_capabilities("cap_ipc_lok=ep")
    assert ACCEPTED_NAMES in str(caught.value)
    assert "cap_ipc_lock" in str(caught.value) and "cap_checkpoint_restore" in str(caught.value)


def test_syntax_error_describes_the_accepted_form():
    with pytest.raises(CapabilityError, match=r"expected libcap's text form .* e \(effective\), i \(inheritable\)"):
        parse_capabilities("cap_ipc_lock")


def test_message_uses_the_option_name_given():
    with pytest.raises(CapabilityError, match=r"^cap: "):
        parse_capabilities("nope=ep", option="cap")


def test_a_value_that_is_not_text_fails():
    with pytest.raises(CapabilityError, match=r"^capability: None is not a text"):
        parse_capabilities(None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cap_ipc_lock", {14: "eip"}),
        ("cap_ipc_lock,cap_chown", {0: "eip", 14: "eip"}),
        ("all", {n: "eip" for n in range(41)}),
        ("cap_ipc_lock cap_net_raw=p", {13: "p", 14: "eip"}),
    ],
)
def test_bare_names_mean_every_flag_when_allowed(text, expected):
    assert flags_of(text, bare_names=True) == expected


# --- formatting ------------------------------------------------------------------------------

# Expected texts are what getcap / cap_to_text of libcap 2.66 print for these sets.
@pytest.mark.parametrize(
    "flags, text",
    [
        ({}, "="),
        ({14: "ep"}, "cap_ipc_lock=ep"),
        ({10: "ep", 14: "ep"}, "cap_net_bind_service,cap_ipc_lock=ep"),
        ({14: "p"}, "cap_ipc_lock=p"),
        ({14: "i"}, "cap_ipc_lock=i"),
        ({14: "ei"}, "cap_ipc_lock=ei"),
        ({14: "eip"}, "cap_ipc_lock=eip"),
        ({14: "ip"}, "cap_ipc_lock=ip"),
        ({0: "ep", 40: "ep"}, "cap_chown,cap_checkpoint_restore=ep"),
        ({13: "i", 14: "ip"}, "cap_ipc_lock=ip cap_net_raw+i"),
        ({10: "ep", 13: "ei", 14: "eip"}, "cap_ipc_lock=eip cap_net_raw+ei cap_net_bind_service+ep"),
        (ALL_EP, "=ep"),
        ({n: "ep" for n in range(41) if n != 21}, "=ep cap_sys_admin-ep"),
        ({**{n: "ip" for n in range(41)}, 14: "i"}, "=ip cap_ipc_lock-p"),
        ({41: "ep"}, "= 41+ep"),
        ({63: "p"}, "= 63+p"),
        ({14: "ep", 41: "ep"}, "cap_ipc_lock=ep 41+ep"),
        ({n: "ep" for n in range(64)}, "=ep " + ",".join(str(n) for n in range(41, 64)) + "+ep"),
        ({**{n: "p" for n in range(41)}, 50: "i", 51: "p"}, "=p 50+i 51+p"),
        (
            {1: "e", 2: "i", 3: "p", 4: "ei", 5: "ep", 6: "ip", 7: "eip"},
            (
                "cap_setuid=eip cap_setgid+ip cap_fsetid+ei cap_dac_read_search+i cap_kill+ep cap_fowner+p "
                "cap_dac_override+e"
            ),
        ),
        ({**{n: "i" for n in range(40)}, 42: "i"}, "=i cap_checkpoint_restore-i 42+i"),
    ],
)
def test_format_matches_getcap(flags, text):
    assert format_capabilities(CapabilitySet.from_flags(flags)) == text
    assert flags_of(text) == flags


def test_prevailing_flags_need_a_majority_of_named_capabilities():
    twenty = format_capabilities(CapabilitySet.from_flags({n: "ep" for n in range(20)}))
    twenty_one = format_capabilities(CapabilitySet.from_flags({n: "ep" for n in range(21)}))
    assert twenty.endswith("cap_sys_ptrace=ep") and not twenty.startswith("=")
    assert twenty_one.startswith("=ep cap_sys_admin,")
    assert twenty_one.endswith(",cap_checkpoint_restore-ep")


# --- round trips -----------------------------------------------------------------------------

flag_maps = st.dictionaries(st.integers(0, 63), st.sampled_from(FLAG_COMBINATIONS), max_size=64)
# Sets where most named capabilities share flags, so that getcap's leading '=FLAGS' form shows up.
crowded_flag_maps = st.builds(
    lambda base, extra: {**{n: base for n in range(41)}, **extra},
    st.sampled_from(FLAG_COMBINATIONS),
    st.dictionaries(st.integers(0, 63), st.sampled_from(("",) + FLAG_COMBINATIONS), max_size=30),
).map(lambda flags: {n: f for n, f in flags.items() if f})
capability_sets = st.one_of(flag_maps, crowded_flag_maps).map(CapabilitySet.from_flags)


@given(capability_sets)
def test_format_then_parse_gives_the_same_set(caps):
    text = format_capabilities(caps)
    assert parse_capabilities(text) == caps
    assert format_capabilities(parse_capabilities(text)) == text


def _spell_number(number: int, style: int) -> str:
    if number < len(CAPABILITY_NAMES) and style < 3:
        name = CAPABILITY_NAMES[number]
        return (name, name.upper(), name.title())[style]
    return (str(number), hex(number), "0" + oct(number)[2:] if number else "0")[style % 3]


@given(
    st.dictionaries(st.integers(0, 63), st.sampled_from(FLAG_COMBINATIONS), min_size=1, max_size=12),
    st.lists(st.integers(0, 5), min_size=12, max_size=12),
    st.randoms(use_true_random=False),
)
def test_any_spelling_of_a_set_parses_to_it(flags, styles, random):
    clauses = []
    for (number, letters), style in zip(flags.items(), styles):
        shuffled = "".join(random.sample(letters, len(letters)))
        operator = random.choice(("=", "+", "=+"))
        clauses.append(_spell_number(number, style) + operator + shuffled)
    random.shuffle(clauses)
    text = random.choice((" ", "  ", "\t", "\n")).join(clauses)
    assert parse_capabilities(text).as_flags() == flags


# --- what a file can store -------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["", "cap_ipc_lock=ep", "cap_ipc_lock=p", "cap_ipc_lock=i", "cap_ipc_lock=eip cap_chown=ei", "=ep", "=p", "41=ep"],
)
def test_storable_sets(text):
    caps = parse_capabilities(text)
    assert storable_problem(caps) is None
    check_storable(caps)


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("cap_ipc_lock=ep cap_net_raw+p", ("not on cap_net_raw", "one effective flag")),
        ("all=ep cap_sys_admin-e", ("not on cap_sys_admin", "give e to every capability")),
        ("cap_ipc_lock=e", ("cap_ipc_lock would have e without p or i", "cap_ipc_lock=ep")),
        ("cap_ipc_lock=ep cap_chown=e", ("cap_chown would have e without p or i",)),
        ("cap_chown=i cap_ipc_lock=ep", ("not on cap_chown",)),
    ],
)
def test_unstorable_sets_fail_clearly(text, fragments):
    caps = parse_capabilities(text)
    problem = storable_problem(caps)
    assert problem is not None
    for fragment in fragments:
        assert fragment in problem
    with pytest.raises(CapabilityError, match=r"^capability: the file format cannot store this: "):
        check_storable(caps)


@pytest.mark.parametrize(
    "current, requested, state, expected",
    [
        ("", "cap_ipc_lock=ep", "present", "cap_ipc_lock=ep"),
        ("cap_ipc_lock=ep", "cap_ipc_lock=ep", "present", "cap_ipc_lock=ep"),
        ("cap_net_bind_service=ep", "cap_ipc_lock=ep", "present", "cap_net_bind_service,cap_ipc_lock=ep"),
        ("cap_ipc_lock=p", "cap_ipc_lock=e", "present", "cap_ipc_lock=ep"),
        ("cap_ipc_lock,cap_net_raw=ep", "cap_ipc_lock=ep", "absent", "cap_net_raw=ep"),
        ("cap_ipc_lock=eip", "cap_ipc_lock=ep", "absent", "cap_ipc_lock=i"),
        ("cap_ipc_lock=ep", "cap_ipc_lock=p", "absent", "="),
        ("cap_chown,cap_ipc_lock=ep", "=e", "absent", "cap_chown,cap_ipc_lock=p"),
        ("cap_ipc_lock=ep", "cap_chown=ep", "absent", "cap_ipc_lock=ep"),
        ("cap_chown=ep", "cap_ipc_lock=ep", "exact", "cap_ipc_lock=ep"),
        ("cap_chown=ep", "", "exact", "="),
    ],
)
def test_combine_by_state(current, requested, state, expected):
    result = combine(parse_capabilities(current), parse_capabilities(requested), state)
    assert format_capabilities(result) == expected


def test_absent_with_bare_names_removes_the_whole_capability():
    current = parse_capabilities("cap_chown,cap_ipc_lock=eip")
    result = combine(current, parse_capabilities("cap_ipc_lock", bare_names=True), "absent")
    assert format_capabilities(result) == "cap_chown=eip"


def test_combine_refuses_an_unknown_state():
    with pytest.raises(CapabilityError, match=r"^state: 'gone' is not one of present, absent, exact"):
        combine(CapabilitySet(), CapabilitySet(), "gone")


@given(capability_sets, capability_sets)
def test_present_then_absent_of_the_same_set_leaves_no_trace_of_it(current, requested):
    added = combine(current, requested, "present")
    removed = combine(added, requested, "absent")
    assert not removed.numbers() & requested.numbers() - current.numbers()
    assert removed.permitted == current.permitted - requested.permitted
    assert removed.inheritable == current.inheritable - requested.inheritable
