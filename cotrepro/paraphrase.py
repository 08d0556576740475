"""Paraphrase traces with a language model, keeping only rewrites whose final answer is unchanged.

Experiment SoT-4 rewrites human solutions (H) toward a model's own distribution (P). The prompt is
data: `cotrepro/tasks/prompts/paraphrase.yaml`, whose entries are keyed by trace style ("text",
"code", "micro"; see the file). Any generator can do the rewriting: a hub model, the micro teacher,
or in tests a fake `generate_fn(prompts, sampling) -> list[list[str]]`.

A paraphrase is kept when
1. it is not empty, and task.extract finds a final answer in it, and
2. that answer equals the original trace's extracted answer (stripped strings), or else the
   task's verifier marks both the original and the paraphrase correct (so "0.5" vs "1/2" on MATH,
   or two different programs that both pass MBPP's tests, count as the same answer).
Everything else is rejected with a one-line reason; `rejection_rate` is the rejected share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from cotrepro.generate import SamplingParams, sample
from cotrepro.tasks.base import Problem, Task
from cotrepro.tasks.prompts import get_template, render

GenerateFn = Callable[[list[str], SamplingParams], list[list[str]]]


@dataclass(frozen=True)
class Paraphrase:
    """One rewrite of one trace and whether it was kept."""

    problem_id: str
    original: str
    text: str
    kept: bool
    reason: str  # why it was kept or rejected
    answer_original: str | None
    answer: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def paraphrase(problems: Sequence[Problem], task: Task, *, traces: Sequence[str] | None = None,
               generate_fn: GenerateFn | None = None, model=None, tokenizer=None,
               sampling: SamplingParams = SamplingParams(max_new_tokens=512),
               template: str = "paraphrase", style: str | None = None, store=None,
               model_id: str = "") -> list[Paraphrase]:
    """Rewrite one trace per problem (default: `problem.solution`, the human trace) and check it.

    The generator is `generate_fn` if given, else `cotrepro.generate.sample(model, tokenizer, ...)`
    (resumable through `store`). `style` picks the entry of the template file: "code" for tasks
    that run code, "text" otherwise, unless given (e.g. "micro"). The template's stop strings are
    added to `sampling.stop`; the first completion of each prompt is the paraphrase.
    """
    if traces is None:
        missing = [p.id for p in problems if not p.solution]
        if missing:
            raise ValueError(f"paraphrase: problems without a solution to rewrite "
                             f"(e.g. {missing[0]!r}); pass traces=")
        traces = [p.solution for p in problems]
    if len(traces) != len(problems):
        raise ValueError(f"paraphrase: {len(problems)} problems but {len(traces)} traces")
    if generate_fn is None:
        if model is None or tokenizer is None:
            raise ValueError("paraphrase: give either generate_fn or both model and tokenizer")

        def generate_fn(prompts, sampling):
            return sample(model, tokenizer, prompts, sampling, store=store, model_id=model_id,
                          progress=False)

    prompt = get_template(style or ("code" if task.needs_code_execution else "text"), template)
    sampling = replace(sampling, stop=tuple(dict.fromkeys(sampling.stop + prompt.stop)))
    prompts = [render(prompt, question=p.question, trace=t) for p, t in zip(problems, traces)]
    outputs = generate_fn(prompts, sampling)
    if len(outputs) != len(prompts) or any(not o for o in outputs):
        raise ValueError(f"paraphrase: the generator must return completions "
                         f"for each of {len(prompts)} prompts")
    from cotrepro.grade import grade_problems

    texts = [out[0].strip() for out in outputs]
    verdicts = grade_problems(task, list(problems) * 2, list(traces) + texts, progress=False)
    correct = [bool(v["correct"]) for v in verdicts]
    n = len(texts)
    return [check_paraphrase(task, p, t, text, correct[i], correct[n + i])
            for i, (p, t, text) in enumerate(zip(problems, traces, texts))]


def check_paraphrase(task: Task, problem: Problem, original: str, text: str, original_correct: bool | None = None,
                     text_correct: bool | None = None) -> Paraphrase:
    """Keep `text` as a paraphrase of `original` only if its final answer is unchanged (module doc).
    The two verdicts come from the grader (`cotrepro.grade`, which bounds its time per item);
    `paraphrase` passes them in, graded in one batch."""
    if original_correct is None or text_correct is None:
        from cotrepro.grade import grade_problems

        original_correct, text_correct = (bool(v["correct"]) for v in
                                          grade_problems(task, [problem] * 2, [original, text], progress=False))
    answer_original = task.extract(original)
    answer = task.extract(text) if text else None

    def result(kept: bool, reason: str) -> Paraphrase:
        return Paraphrase(problem.id, original, text, kept, reason, answer_original, answer)

    if not text:
        return result(False, "empty paraphrase")
    if answer is None:
        return result(False, "no final answer found in the paraphrase")
    if answer_original is not None and answer.strip() == answer_original.strip():
        return result(True, "same final answer")
    if original_correct and text_correct:
        return result(True, "different answer text, both verified correct")
    return result(False, f"final answer changed: {answer_original!r} -> {answer!r}")


def rejection_rate(paraphrases: Sequence[Paraphrase]) -> float:
    """The share of paraphrases rejected."""
    if not paraphrases:
        raise ValueError("rejection_rate: no paraphrases")
    return sum(not p.kept for p in paraphrases) / len(paraphrases)
