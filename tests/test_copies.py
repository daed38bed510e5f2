"""The algorithm is repeated across the scripts on purpose (copy and modify), so the repeated blocks
are marked and must stay identical, in the manner of `check_copies` in Hugging Face transformers:

    # COPY <name>: the same in every script with this block (tests/test_copies.py)
    ...
    # END COPY <name>

A block may name one word that differs in one file, as transformers' "Copied from ... with A->B":

    # COPY main, with MEDE -> DIAYN in diayn_continuous.py: ...

(diayn_continuous.py's copy is compared with DIAYN read as MEDE). Change a marked block in one
script and this test fails until every copy has the same change (or the block is split, with the
part that differs left outside the markers)."""

import difflib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["sac_continuous.py", "mede_continuous.py", "diayn_continuous.py"]
START = re.compile(r"^\s*# COPY (?P<name>[^,:]+)(, with (?P<old>\w+) -> (?P<new>\w+) in (?P<file>[\w.]+))?:")
END = re.compile(r"^\s*# END COPY (.+)$")


def copied_blocks(path: str) -> dict[str, str]:
    """The marked blocks of one file, by name (the text between the markers; in the file a block's
    "with A -> B in FILE" names, B read as A)."""
    blocks, name, lines, rename = {}, None, [], None
    with open(path) as f:
        for number, line in enumerate(f, 1):
            start, end = START.match(line), END.match(line)
            if start:
                assert name is None, f"{path}:{number}: COPY {start['name']} starts inside COPY {name}"
                name, lines = start["name"], []
                rename = (start["new"], start["old"]) if start["file"] == os.path.basename(path) else None
            elif end:
                assert end[1] == name, f"{path}:{number}: END COPY {end[1]} closes COPY {name}"
                assert name not in blocks, f"{path}: two blocks named {name}"
                text = "".join(lines)
                blocks[name], name = re.sub(rf"\b{rename[0]}\b", rename[1], text) if rename else text, None
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
    everywhere = {"environment", "ensemble layer", "optimizers", "temperature loss and gradient step"}
    assert set(blocks["sac_continuous.py"]) == everywhere
    assert set(blocks["mede_continuous.py"]) == set(blocks["diayn_continuous.py"]) == everywhere | {
        "critic loss and discriminator batch", "batch and z networks", "acting and state", "main"}
    assert "class EnsembleMLP" in blocks["sac_continuous.py"]["ensemble layer"]
    assert "def main(" in blocks["diayn_continuous.py"]["main"] and "DIAYN" not in blocks["diayn_continuous.py"]["main"]


def test_main_is_the_same_in_mede_and_diayn_but_for_the_algorithm_s_name(tmp_path):
    for script in SCRIPTS:
        text = open(os.path.join(ROOT, script)).read()
        if script == "diayn_continuous.py":
            assert 'agent = DIAYN(**dims' in text
            text = text.replace("    check_args(args)\n", "    check_args(args)\n    args.seed += 1\n", 1)
        (tmp_path / script).write_text(text)
    problems = differing_copies([str(tmp_path / script) for script in SCRIPTS])
    assert len(problems) == 1 and problems[0].startswith("COPY main differs") and "args.seed += 1" in problems[0]


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
