"""The algorithm is repeated across the scripts on purpose (copy and modify), so the repeated blocks
are marked and must stay identical, in the manner of `check_copies` in Hugging Face transformers:

    # COPY <name>: the same in mede_continuous.py and diayn_continuous.py (tests/test_copies.py checks)
    ...
    # END COPY <name>

Change a marked block in one script and this test fails until every copy has the same change
(or the block is split, with the part that differs left outside the markers)."""

import difflib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["sac_continuous.py", "mede_continuous.py", "diayn_continuous.py"]
START, END = re.compile(r"^\s*# COPY (.+?):"), re.compile(r"^\s*# END COPY (.+)$")


def copied_blocks(path: str) -> dict[str, str]:
    """The marked blocks of one file, by name (the text between the markers)."""
    blocks, name, lines = {}, None, []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            start, end = START.match(line), END.match(line)
            if start:
                assert name is None, f"{path}:{number}: COPY {start[1]} starts inside COPY {name}"
                name, lines = start[1], []
            elif end:
                assert end[1] == name, f"{path}:{number}: END COPY {end[1]} closes COPY {name}"
                assert name not in blocks, f"{path}: two blocks named {name}"
                blocks[name], name = "".join(lines), None
            elif name is not None:
                lines.append(line)
    assert name is None, f"{path}: COPY {name} is never closed"
    return blocks


def differing_copies(paths: list[str]) -> list[str]:
    """One message (with a diff) for every marked block whose copies differ, or that has no copy."""
    found = {path: copied_blocks(path) for path in paths}
    problems = []
    for name in sorted({name for blocks in found.values() for name in blocks}):
        holders = [path for path in paths if name in found[path]]
        if len(holders) < 2:
            problems.append(f"COPY {name} appears only in {holders[0]}")
            continue
        first = holders[0]
        for other in holders[1:]:
            if found[other][name] != found[first][name]:
                diff = difflib.unified_diff(found[first][name].splitlines(), found[other][name].splitlines(),
                                            os.path.basename(first), os.path.basename(other), lineterm="", n=1)
                problems.append(f"COPY {name} differs between {first} and {other}:\n" + "\n".join(diff))
    return problems


def test_every_copied_block_is_the_same_in_every_script():
    problems = differing_copies([os.path.join(ROOT, script) for script in SCRIPTS])
    assert not problems, "\n\n".join(problems)


def test_the_marked_blocks_cover_what_the_scripts_share():
    blocks = {script: copied_blocks(os.path.join(ROOT, script)) for script in SCRIPTS}
    assert set(blocks["sac_continuous.py"]) == {"environment"}
    assert set(blocks["mede_continuous.py"]) == set(blocks["diayn_continuous.py"]) == {
        "environment", "replay buffer and networks", "temperature and discriminator batch", "acting and state"}
    assert "class EnsembleMLP" in blocks["mede_continuous.py"]["replay buffer and networks"]


@pytest.mark.parametrize("edit", [
    ("                x = torch.relu(torch.baddbmm(bias, x, weight))", "                x = torch.relu(torch.baddbmm(bias, weight, x))"),  # a changed line
    ("    real_next_obs = next_obs.copy()\n", ""),  # a deleted line
])
def test_an_edited_copy_fails_the_check(tmp_path, edit):
    old, new = edit
    for script in SCRIPTS:
        with open(os.path.join(ROOT, script)) as f:
            text = f.read()
        if script == "diayn_continuous.py":
            assert old in text
            text = text.replace(old, new, 1)
        (tmp_path / script).write_text(text)
    problems = differing_copies([str(tmp_path / script) for script in SCRIPTS])
    assert len(problems) == 1 and "diayn_continuous.py" in problems[0] and (new or old).strip() in problems[0]
