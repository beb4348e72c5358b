"""Lifecycle tables against DESIGN.md section 2, and the start-up checks on custom tables.

The expected edges are written out here by hand from DESIGN.md, not derived from the code under test,
so a wrong edge in lifecycle.py shows up as a failing pair rather than as a consistent mistake.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

import pytest

from jobwarden_server.domain import lifecycle
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.domain.status import JobStatus

CREATED = JobStatus.CREATED
QUEUED = JobStatus.QUEUED
RUNNING = JobStatus.RUNNING
COMPLETED = JobStatus.COMPLETED
PARTIAL = JobStatus.PARTIAL
FAILED = JobStatus.FAILED
CANCELLED = JobStatus.CANCELLED
EXPIRED = JobStatus.EXPIRED

ALL_STATUSES = (CREATED, QUEUED, RUNNING, COMPLETED, PARTIAL, FAILED, CANCELLED, EXPIRED)
TERMINALS = (COMPLETED, PARTIAL, FAILED, CANCELLED, EXPIRED)
NON_TERMINALS = (CREATED, QUEUED, RUNNING)

Edge = tuple[JobStatus, JobStatus]

# DESIGN.md section 2, edge by edge.
EXPECTED: dict[str, frozenset[Edge]] = {
    "standard": frozenset(
        {
            (CREATED, QUEUED),
            (CREATED, CANCELLED),
            (CREATED, EXPIRED),
            (QUEUED, CANCELLED),
            (QUEUED, EXPIRED),
            (QUEUED, RUNNING),
            (RUNNING, COMPLETED),
            (RUNNING, PARTIAL),
            (RUNNING, FAILED),
            (RUNNING, CANCELLED),
            (RUNNING, EXPIRED),
            (RUNNING, QUEUED),  # retry, taken by the server only
        }
    ),
    "simple": frozenset(
        {
            (QUEUED, RUNNING),
            (RUNNING, COMPLETED),
            (RUNNING, FAILED),
            (RUNNING, PARTIAL),
        }
    ),
    "staged": frozenset(
        {
            (CREATED, QUEUED),
            (QUEUED, RUNNING),
            (CREATED, COMPLETED),
            (CREATED, FAILED),
            (CREATED, CANCELLED),
            (CREATED, EXPIRED),
            (QUEUED, COMPLETED),
            (QUEUED, FAILED),
            (QUEUED, CANCELLED),
            (QUEUED, EXPIRED),
            (RUNNING, COMPLETED),
            (RUNNING, FAILED),
            (RUNNING, CANCELLED),
            (RUNNING, EXPIRED),
        }
    ),
}

# Whether jobs of the table may start held in CREATED and be released: only where CREATED -> QUEUED exists.
EXPECTED_CAN_HOLD = {"standard": True, "simple": False, "staged": True}

TABLE_NAMES = sorted(EXPECTED)
PAIRS = list(itertools.product(ALL_STATUSES, repeat=2))


def builtin(name: str) -> lifecycle.Lifecycle:
    """The built-in table called `name`, looked up the way the server does."""
    return lifecycle.Lifecycles.build().named(name)


def names_state(status: JobStatus) -> str:
    """A `match=` pattern: the message names `status` as a whole word."""
    return rf"\b{re.escape(str(status))}\b"


def check(edges: Iterable[Edge], *, initial: JobStatus = QUEUED, name: str = "custom") -> lifecycle.Lifecycle:
    return lifecycle.Lifecycle.checked(name, initial, edges)


# A minimal valid custom table; the rejection tests below each add exactly one fault to something like it.
MINIMAL: tuple[Edge, ...] = ((QUEUED, RUNNING), (RUNNING, COMPLETED), (RUNNING, FAILED))


# --- built-in tables against DESIGN.md -------------------------------------------------------------


def test_builtin_tables_are_exactly_the_three_of_the_design_and_the_batch_table() -> None:
    assert set(lifecycle.BUILTIN) == {"standard", "simple", "staged", "batch"}
    for name, table in lifecycle.BUILTIN.items():
        assert table.name == name


def test_the_batch_table_is_what_a_parent_needs() -> None:
    """A parent starts, ends in one of the aggregate outcomes, or is cancelled (at once if it never
    started): exactly these edges (domain/batches.py)."""
    assert lifecycle.BATCH.initial is QUEUED
    assert lifecycle.BATCH.transitions == {
        (QUEUED, RUNNING),
        (QUEUED, JobStatus.CANCELLED),
        (RUNNING, COMPLETED),
        (RUNNING, JobStatus.PARTIAL),
        (RUNNING, FAILED),
        (RUNNING, JobStatus.CANCELLED),
    }


@pytest.mark.parametrize("name", TABLE_NAMES)
@pytest.mark.parametrize(("from_status", "to_status"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_allows_matches_design_for_every_pair(
    name: str, from_status: JobStatus, to_status: JobStatus
) -> None:
    expected = (from_status, to_status) in EXPECTED[name]
    assert builtin(name).allows(from_status, to_status) is expected


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_table_has_no_edge_beyond_the_design(name: str) -> None:
    # The pairwise test covers allows(); this pins the stored data too (e.g. no edge with a foreign value).
    assert builtin(name).transitions == EXPECTED[name]


@pytest.mark.parametrize("name", TABLE_NAMES)
@pytest.mark.parametrize("terminal", TERMINALS)
def test_terminal_statuses_have_no_way_out(name: str, terminal: JobStatus) -> None:
    assert terminal.terminal
    table = builtin(name)
    assert [to for to in ALL_STATUSES if table.allows(terminal, to)] == []


def test_terminal_flag_matches_design() -> None:
    assert {s for s in ALL_STATUSES if s.terminal} == set(TERMINALS)
    assert set(JobStatus) == set(ALL_STATUSES)


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_never_back_to_created(name: str) -> None:
    table = builtin(name)
    assert [a for a in ALL_STATUSES if table.allows(a, CREATED)] == []


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_can_hold(name: str) -> None:
    assert builtin(name).can_hold() is EXPECTED_CAN_HOLD[name]


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_jobs_start_queued(name: str) -> None:
    # Not held: a new job is runnable at once (DESIGN: pending = QUEUED); hold puts it in CREATED instead.
    assert builtin(name).initial is QUEUED


@pytest.mark.parametrize("name", TABLE_NAMES)
@pytest.mark.parametrize("to_status", ALL_STATUSES)
def test_sources_of_matches_design(name: str, to_status: JobStatus) -> None:
    expected = {a for a, b in EXPECTED[name] if b == to_status}
    assert builtin(name).sources_of(to_status) == expected


# --- custom tables: Lifecycle.checked ----------------------------------------------------------------


def test_checked_accepts_a_valid_custom_table() -> None:
    table = check([*MINIMAL, (CREATED, QUEUED), (CREATED, CANCELLED)], name="mine")
    assert table.name == "mine"
    assert table.initial is QUEUED
    assert table.allows(CREATED, QUEUED)
    assert not table.allows(QUEUED, COMPLETED)
    assert table.can_hold()


def test_can_hold_needs_the_edge_from_created_to_the_initial_state() -> None:
    assert not check(MINIMAL).can_hold()
    # CREATED is reachable and leads on, but not to the initial state: release is impossible, so no hold.
    assert not check([*MINIMAL, (QUEUED, CREATED), (CREATED, RUNNING)]).can_hold()
    assert check([*MINIMAL, (CREATED, QUEUED)]).can_hold()


@pytest.mark.parametrize("terminal", TERMINALS)
def test_rejects_a_terminal_state_with_a_way_out(terminal: JobStatus) -> None:
    edges = [*MINIMAL, (RUNNING, terminal), (terminal, QUEUED)]
    with pytest.raises(ConfigError, match=names_state(terminal)):
        check(edges)


def test_rejects_a_terminal_state_with_a_self_loop_as_a_way_out() -> None:
    with pytest.raises(ConfigError, match=names_state(COMPLETED)):
        check([*MINIMAL, (COMPLETED, COMPLETED)])


@pytest.mark.parametrize("state", NON_TERMINALS)
def test_rejects_a_self_loop(state: JobStatus) -> None:
    edges = [*MINIMAL, (CREATED, QUEUED), (state, state)]
    with pytest.raises(ConfigError, match=names_state(state)):
        check(edges)


def test_rejects_a_cycle_with_no_exit() -> None:
    with pytest.raises(ConfigError, match="terminal") as caught:
        check([(QUEUED, RUNNING), (RUNNING, QUEUED)])
    assert re.search(r"\b(QUEUED|RUNNING)\b", str(caught.value))


def test_rejects_a_trapped_cycle_and_names_a_trapped_state() -> None:
    # CREATED can still finish (-> CANCELLED), but once QUEUED a job circles for ever.
    edges = [(CREATED, QUEUED), (CREATED, CANCELLED), (QUEUED, RUNNING), (RUNNING, QUEUED)]
    with pytest.raises(ConfigError, match="terminal") as caught:
        check(edges)
    message = str(caught.value)
    assert re.search(r"\b(QUEUED|RUNNING)\b", message)
    assert not re.search(names_state(CREATED), message)


def test_rejects_a_dead_end_non_terminal_state() -> None:
    # QUEUED -> CREATED leads into a state with no way out at all.
    with pytest.raises(ConfigError, match=names_state(CREATED)):
        check([*MINIMAL, (QUEUED, CREATED)])


def test_rejects_an_empty_table() -> None:
    with pytest.raises(ConfigError, match=names_state(QUEUED)):
        check([])


def test_rejects_an_unreachable_state() -> None:
    # Jobs start in CREATED and go straight to RUNNING: QUEUED is declared but no job can ever get there.
    edges = [(CREATED, RUNNING), (QUEUED, RUNNING), (RUNNING, COMPLETED)]
    with pytest.raises(ConfigError, match=names_state(QUEUED)):
        check(edges, initial=CREATED)


def test_rejects_an_unreachable_terminal_state() -> None:
    # EXPIRED is only reachable from QUEUED, which nothing reaches.
    edges = [(CREATED, RUNNING), (QUEUED, RUNNING), (QUEUED, EXPIRED), (RUNNING, COMPLETED)]
    with pytest.raises(ConfigError, match=r"\b(QUEUED|EXPIRED)\b"):
        check(edges, initial=CREATED)


def test_rejects_created_when_no_job_can_enter_it() -> None:
    # No CREATED -> QUEUED (the initial state), so can_hold() is False and no edge leads into CREATED:
    # CREATED, and EXPIRED behind it, are unreachable: CREATED is an entry only for tables that can hold.
    edges = [*MINIMAL, (CREATED, EXPIRED)]
    with pytest.raises(ConfigError, match=r"\b(CREATED|EXPIRED)\b"):
        check(edges)


@pytest.mark.parametrize("terminal", TERMINALS)
def test_rejects_a_terminal_initial_state(terminal: JobStatus) -> None:
    edges = [*MINIMAL, (CREATED, QUEUED)]
    with pytest.raises(ConfigError, match=names_state(terminal)):
        check(edges, initial=terminal)


def test_rejects_a_nameless_table() -> None:
    with pytest.raises(ConfigError):
        check(MINIMAL, name="")


# --- the tables in force: Lifecycles ----------------------------------------------------------------


def test_build_without_config_has_the_builtins_and_standard_as_default() -> None:
    tables = lifecycle.Lifecycles.build()
    assert set(tables.tables) == {"standard", "simple", "staged", "batch"}
    assert tables.default == "standard"
    assert tables.for_job_type("anything").name == "standard"


def test_for_job_type_picks_per_type_and_the_default_otherwise() -> None:
    mine = check(MINIMAL, name="mine")
    tables = lifecycle.Lifecycles.build(
        [mine], by_job_type={"thumbnail": "simple", "ingest": "staged", "custom": "mine"}
    )
    assert tables.for_job_type("thumbnail").name == "simple"
    assert tables.for_job_type("ingest").name == "staged"
    assert tables.for_job_type("custom") is mine
    assert tables.for_job_type("other").name == "standard"
    assert tables.for_job_type("").name == "standard"
    assert tables.named("mine") is mine


def test_default_can_be_chosen() -> None:
    mine = check(MINIMAL, name="mine")
    tables = lifecycle.Lifecycles.build([mine], by_job_type={"thumbnail": "staged"}, default="mine")
    assert tables.for_job_type("other") is mine
    assert tables.for_job_type("thumbnail").name == "staged"
    assert lifecycle.Lifecycles.build(default="simple").for_job_type("x").name == "simple"


def test_build_rejects_an_unknown_lifecycle_for_a_job_type() -> None:
    with pytest.raises(ConfigError, match="nope") as caught:
        lifecycle.Lifecycles.build(by_job_type={"thumbnail": "simple", "resize": "nope"})
    assert "resize" in str(caught.value)


def test_build_rejects_an_unknown_default() -> None:
    with pytest.raises(ConfigError, match="nope"):
        lifecycle.Lifecycles.build(default="nope")


def test_build_matches_lifecycle_names_exactly() -> None:
    # A custom table is known only under its own name, case included.
    mine = check(MINIMAL, name="mine")
    with pytest.raises(ConfigError, match="Mine"):
        lifecycle.Lifecycles.build([mine], by_job_type={"a": "Mine"})


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_build_rejects_a_custom_table_shadowing_a_builtin(name: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(name)):
        lifecycle.Lifecycles.build([check(MINIMAL, name=name)])


def test_build_rejects_a_custom_table_defined_twice() -> None:
    first = check(MINIMAL, name="mine")
    second = check([*MINIMAL, (RUNNING, PARTIAL)], name="mine")
    with pytest.raises(ConfigError, match="mine"):
        lifecycle.Lifecycles.build([first, second])


def test_build_does_not_change_the_builtins() -> None:
    lifecycle.Lifecycles.build([check(MINIMAL, name="mine")])
    assert set(lifecycle.BUILTIN) == {"standard", "simple", "staged", "batch"}
    assert set(lifecycle.Lifecycles.build().tables) == {"standard", "simple", "staged", "batch"}
