"""Every number the teaching notebooks state is the number they compute.

The convention is in :mod:`teaching_claims` (and at the top of each teaching notebook): a
computed number in the text is bold, and the code cell above must print it, rounded as
written; decimals outside bold are refused; qualitative claims are asserts in the cell above.
The unit tests below show that the checker fails when a stated number is changed.
"""
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

import teaching_claims as tc

FAST = ["04_teaching_quantization.ipynb", "05_fp16.ipynb", "06_int8_arithmetic.ipynb",
        "08_fake_quantization.ipynb"]
TEACHING = FAST + [pytest.param("07_calibration_sets.ipynb", marks=pytest.mark.slow)]


def _cells(printed: str, markdown: str) -> list:
    code = new_code_cell("...", outputs=[new_output("stream", name="stdout", text=printed)])
    return [code, new_markdown_cell(markdown)]


# ------------------------------------------------------------------ the checker itself
@pytest.mark.parametrize("printed, markdown", [
    ("best amax = 9.8712", "The best threshold is **9.87**."),
    ("ratio 0.375", "about **0.38** of it"),
    ("clipping 0.008% of the values", "it clips **0.008%**"),
    ("difference 1.91e-06", "they agree to **1.9e-06**"),
    ("1,921 candidates", "of the **1921** candidates"),
    ("x = [-0.61 -0.52  1.62]", "nothing below **-0.61**"),
    ("SQNR 39.8 dB", "it keeps **39.8 dB** and uses 8 bits, 127 levels, `0.5` steps and $2.5$"),
])
def test_claims_that_hold(printed, markdown):
    assert tc.check_cells(_cells(printed, markdown)) == []


@pytest.mark.parametrize("printed, markdown, problem", [
    ("best amax = 9.8712", "The best threshold is **9.88**.", "not printed"),
    ("best amax = 9.8712", "The best threshold is **9.9**, about 9.87.", "not a bold claim"),
    ("ratio 0.375", "about **-0.38** of it", "not printed"),
    ("difference 1.91e-06", "they agree to **1.9e-05**", "not printed"),
])
def test_claims_that_fail(printed, markdown, problem):
    problems = tc.check_cells(_cells(printed, markdown))
    assert len(problems) == 1 and problem in problems[0]


def test_claim_needs_a_code_cell_above():
    cells = [new_markdown_cell("# Title"), new_markdown_cell("It is **0.5**.")]
    assert "no code cell above" in tc.check_cells(cells)[0]


def test_claims_are_checked_against_the_cell_above_only():
    cells = _cells("value 0.42", "It is **0.42**.") + [new_code_cell("..."), new_markdown_cell("Still **0.42**.")]
    problems = tc.check_cells(cells)
    assert len(problems) == 1 and problems[0].startswith("cell 3")


def test_mutating_a_stated_number_makes_the_check_fail():
    cells = _cells("max |x| = 11.87; best = 9.87", "max **11.87**, best **9.87**")
    assert tc.check_cells(cells) == []
    for which in (0, 1):
        mutated = [cells[0], new_markdown_cell(tc.mutate_claims(cells[1].source, which))]
        assert len(tc.check_cells(mutated)) == 1


def test_bump_keeps_the_written_format():
    assert tc.mutate_claims("**0.37**") == "**0.40**"
    assert tc.mutate_claims("**9 dB**") == "**12 dB**"
    assert tc.mutate_claims("**1.9e-06**") == "**2.2e-06**"
    assert tc.mutate_claims("**-0.61**") == "**-0.64**"


# ------------------------------------------------------------------ the teaching notebooks
@pytest.mark.parametrize("name", TEACHING)
def test_every_stated_number_is_computed(name):
    cells = tc.executed(name).cells
    assert tc.claim_count(cells) >= 5, "a lesson states its results as bold claims"
    assert tc.check_cells(cells) == []


@pytest.mark.parametrize("name", TEACHING)
def test_changing_any_stated_number_is_caught(name):
    cells = tc.executed(name).cells
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        for which in range(len(tc.claims_in(cell["source"]))):
            mutated = list(cells)
            mutated[i] = new_markdown_cell(tc.mutate_claims(cell["source"], which, tc.printed_above(cells, i)))
            assert len(tc.check_cells(mutated)) == 1, f"cell {i}, claim {which}: a changed number went unnoticed"


@pytest.mark.parametrize("name", TEACHING)
def test_each_lesson_says_what_it_teaches_and_asks_a_question(name):
    cells = tc.executed(name).cells
    text = [c["source"] for c in cells if c["cell_type"] == "markdown"]
    assert sum("*Teaches:" in t for t in text) >= 1
    questions = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "**Question:**" in c["source"]]
    assert questions
    for i in questions:  # answered with a widget: the next cell builds one and wires it
        nxt = cells[i + 1]
        assert nxt["cell_type"] == "code" and ".observe(" in nxt["source"], f"cell {i + 1}"
