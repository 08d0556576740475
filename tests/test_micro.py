"""The micro world: corpora, training from scratch, and (very small) cached builds.

The builders of its tokenizers and models are tested in test_tiny.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace

import pytest
import torch

from cotrepro import world
from cotrepro.micro import ArithWorldParams, WorldParams, build_corpora, build_world
from cotrepro.pretrain import train_from_scratch
from cotrepro.models import load_model
from cotrepro.tasks import arith
from cotrepro.tiny import MicroModelParams, build_micro_model, build_word_tokenizer
from cotrepro.world import rebuild, smoke_world

torch.set_num_threads(1)

SMALL = ArithWorldParams(n_step_lines=20, n_one_step=30, n_two_step=20, n_statements=30, n_other_tasks=10,
                         n_multi_step=40, n_rewrites=10, n_student_worked=30, n_student_direct=10,
                         paraphraser_rewrites=0)


@pytest.fixture(scope="module")
def corpora():
    return build_corpora(SMALL)


def _solved_steps(doc):  # step lines of a stepwise-solved arith problem (0 if the document is not one)
    return doc.count(" = ") if "####" in doc and doc.startswith("Question:") else 0


def test_corpora_keep_multi_step_solutions_from_the_student(corpora):
    # the student now reads solved two-step problems (n_two_step, its bit of the task) but never
    # a solved problem of three or more steps (changed on purpose: it read one-step ones only)
    assert max(_solved_steps(d) for d in corpora["student"]) == 2
    student_docs = Counter(corpora["student"])
    teacher_only = list((Counter(corpora["teacher"]) - student_docs).elements())
    assert sum(_solved_steps(d) >= 2 for d in teacher_only) >= 35  # of 40 multi-step problems
    assert sum(_solved_steps(d) >= 3 for d in corpora["teacher"]) > 0
    # ... except in the textbook framing (question, then steps: a skill the experiments' prompt
    # does not call up) and as bare answers in the experiments' framing; neither is the teacher's
    worked = [d for d in corpora["student"] if not d.startswith("Question:") and "####" in d and " = " in d]
    direct = [d for d in corpora["student"] if d.startswith("Question:") and d.endswith("Answer:\n" + d.split("\n")[-1])
              and d.split("\n")[-1].startswith("####")]
    assert len(worked) == SMALL.n_student_worked and max(d.count(" = ") for d in worked) >= 3
    assert len(direct) == SMALL.n_student_direct
    assert all(arith.TASK.extract(d) == str(arith.check_steps(d)[-1].claimed) for d in worked)
    solved_by_student = Counter(d for d in corpora["student"] if "####" in d) - Counter(worked + direct)
    assert solved_by_student and not solved_by_student - Counter(corpora["teacher"])  # shared with the teacher
    assert not set(worked + direct) & set(corpora["teacher"])
    test_questions = {p.question for p in arith.TASK.load("test", limit=200)}
    assert not any(q in d for role in ("student", "teacher") for d in corpora[role] for q in test_questions)


def test_corpora_hold_both_styles_and_no_injected_mistakes(corpora):
    """The teacher's wrong traces are its own mistakes (nothing injected: the corpus that replaced
    the injected wrong-step traces holds no false claim), and the student has read human-style
    solutions (`<<a*b=c>>` annotations) as well as its own style."""
    for role in ("student", "teacher"):
        assert all(arith.fraction_true_steps(d) in (None, 1.0) for d in corpora[role]), role
        human = [d for d in corpora[role] if "<<" in d]
        assert human and all(arith.TASK.extract(d) is not None for d in human)
    solved = [d for d in corpora["teacher"] if d.startswith("Question:") and "####" in d]
    assert len(solved) >= SMALL.n_one_step + SMALL.n_multi_step
    for doc in solved:  # every solution reaches the result of its last (true) step
        assert arith.TASK.extract(doc) == str(arith.check_steps(doc)[-1].claimed), doc
    rewrites = [d for d in corpora["teacher"] if "Hint:" in d]
    assert len(rewrites) == SMALL.n_rewrites
    assert build_corpora(SMALL) == corpora  # deterministic for a seed
    assert build_corpora(SMALL, seed=1) != corpora


def test_the_paraphraser_reads_the_teachers_corpus_and_more_rewrites(corpora):
    """paraphraser_rewrites adds a paraphraser's corpus: the teacher's, in its order, then the
    extra rewrite documents; the student's and the teacher's corpora are as without it."""
    assert "paraphraser" not in corpora
    more = build_corpora(replace(SMALL, paraphraser_rewrites=25))
    assert more["student"] == corpora["student"] and more["teacher"] == corpora["teacher"]
    assert more["paraphraser"][:len(corpora["teacher"])] == corpora["teacher"]
    added = more["paraphraser"][len(corpora["teacher"]):]
    assert len(added) == 25 and all("\nHint: " in d and d.startswith("Question: ") for d in added)


@pytest.mark.skipif(not (world.WORLD_DIR / "teacher").is_dir(), reason="needs the shipped micro world")
def test_the_shipped_tokenizer_is_the_one_its_params_build():
    """The world's one tokenizer numbers pieces by first appearance in the teacher's corpus; the
    build must give the shipped one again (or the student's embeddings would change with it)."""
    a = ArithWorldParams()
    corpora = build_corpora(a)
    vocab = build_word_tokenizer(corpora["teacher"], max_number=max(a.max_value, 100)).get_vocab()
    for role in ("student", "teacher", "paraphraser"):
        shipped = json.loads((world.WORLD_DIR / role / "tokenizer.json").read_text())["model"]["vocab"]
        assert vocab == shipped, role
    # and the paraphraser's extra documents hold no piece outside it (which would encode as padding)
    assert build_word_tokenizer(corpora["paraphraser"], max_number=max(a.max_value, 100)).get_vocab() == vocab


def test_corpora_use_the_whole_number_range():
    corpora = build_corpora(ArithWorldParams(n_step_lines=200, n_one_step=0, n_two_step=0, n_statements=0,
                                             n_other_tasks=0, n_multi_step=0, n_rewrites=0,
                                             n_student_worked=0, n_student_direct=0, paraphraser_rewrites=0))
    numbers = [int(n) for d in corpora["teacher"] for n in d.replace("\n", " ").split() if n.isdigit()]
    assert max(numbers) > 99 and max(numbers) <= 120 and min(numbers) >= 2


def test_train_from_scratch_learns_and_masks_the_prompt(tmp_path):
    docs = ["12 + 5 = 17", "3 * 4 = 12", "20 - 7 = 13"] * 4
    tokenizer = build_word_tokenizer(docs, max_number=20)
    model = build_micro_model(MicroModelParams(n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, d_ff=64), tokenizer)
    curves = train_from_scratch(model, tokenizer, [("Q: ", d) for d in docs], steps=12, lr=5e-3, batch_size=4,
                                seed=0, out_dir=tmp_path / "run", curve=lambda m: {"ok": 1.0}, curve_every=5)
    losses = [p["loss"] for p in curves["loss"]]
    assert losses and all(v > 0 for v in losses) and losses[-1] < losses[0]
    assert [p["step"] for p in curves["accuracy"]] == [5, 10, 12]
    assert not model.training and not (tmp_path / "run" / "trainer").exists()
    assert not (tmp_path / "run" / "curve.jsonl").exists()
    with pytest.raises(ValueError, match="max_seq_len"):
        train_from_scratch(model, tokenizer, [("", " 1 +" * 300)], steps=1, lr=1e-3, batch_size=1, seed=0,
                           out_dir=tmp_path / "long")


def test_smoke_world_gives_loadable_cached_checkpoints(tmp_path):
    manifest = rebuild(tmp_path, smoke=True, command="test")
    report = json.loads((tmp_path / "world.json").read_text())
    assert report["params_hash"] == manifest["params_hash"] and manifest["command"] == "test"
    assert 0.0 <= report["teacher"]["multi_step"]["accuracy"] <= 1.0
    assert "one_step" in report["student"] and "two_step" in report["student"]
    for role in ("student", "teacher", "paraphraser", "stargraph-s0"):
        curves = json.loads((tmp_path / role / "curves.json").read_text())
        assert curves["loss"] and all(point["loss"] > 0 for point in curves["loss"])
        model, _ = load_model(tmp_path / role, device="cpu")
        assert model.num_parameters() == report[role]["parameters"]
    assert report["stargraph-s0"]["shortcut_level"] == 0.5
    test_rows = (tmp_path / "test.jsonl").read_text().splitlines()
    assert len(test_rows) == smoke_world().n_eval
    assert all(json.loads(r)["prompt"].startswith("Question: ") for r in test_rows)
    assert world.check(tmp_path)  # every file matches the manifest
    started = time.time()
    assert build_world(smoke_world(), tmp_path) == report
    assert time.time() - started < 1.0  # the second call is a cache hit
    assert isinstance(WorldParams().arith, ArithWorldParams)


@pytest.mark.skipif(not (world.WORLD_DIR / "stargraph-s0").is_dir(), reason="needs the shipped micro world")
def test_next_node_hits_of_the_shipped_star_model_show_the_shortcut_in_the_prompt_of_step_08():
    """Step 08 measures the SFT arm with the same helper as the world's report: the shipped model
    looks edges up (later steps right) but guesses the first step. (Step 08 once compared the
    token "7," with the node "7" and read every node but the last as a miss: first step 0.)"""
    from cotrepro.micro import next_node_hits
    from cotrepro.tasks.stargraph import StarGraphTask

    task = StarGraphTask()
    problems = task.load("test", limit=60)
    model, tokenizer = load_model(str(world.WORLD_DIR / "stargraph-s0"))
    first, later = next_node_hits(model, tokenizer, problems, [task.prompt(p, "default") for p in problems])
    later_hits = [h for hits in later for h in hits]
    assert len(first) == 60 and len(later_hits) >= 60
    assert sum(later_hits) / len(later_hits) >= 0.9
    assert 0.25 <= sum(first) / len(first) <= 0.75
