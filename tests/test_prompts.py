"""Prompt templates: every file loads, is versioned, renders; the SoT prompts match the release."""

from __future__ import annotations

import pytest
import yaml

from cotrepro.tasks.prompts import PROMPT_DIR, get_template, render, template_names

FIELDS = {  # the fields the paper tasks' prompts take (the API other modules rely on), sample values
    "math": {"problem": "What is $1+1$?"},
    "gsm8k": {"problem": "Tom has 3 apples and buys 2. How many now?"},
    "countdown": {"nums": "[3, 5, 7]", "target": "22"},
    "mbpp": {"text": "Write a function to add two numbers.", "first_test": "assert add(1, 2) == 3"},
}


def template_tasks():
    for name in template_names():
        data = yaml.safe_load((PROMPT_DIR / f"{name}.yaml").read_text())
        for task in data["tasks"]:
            yield name, task


def test_the_expected_template_files_exist():
    assert {"default", "sot_zero_shot", "minerva_few_shot"} <= set(template_names())


@pytest.mark.parametrize("name, task", list(template_tasks()))
def test_every_template_loads_is_versioned_and_renders_with_its_fields(name, task):
    template = get_template(task, name)
    assert isinstance(template.version, int) and template.version >= 1
    if task in FIELDS:
        assert set(template.fields) == set(FIELDS[task])
    assert template.stop and all(isinstance(s, str) and s for s in template.stop)
    values = FIELDS.get(task) or {field: f"<{field} value>" for field in template.fields}
    text = render(template, **values)
    for value in values.values():
        assert value in text
    for field in template.fields:
        assert "{" + field + "}" not in text


@pytest.mark.parametrize("task", list(FIELDS))
def test_every_task_has_a_default_that_names_the_template_it_resolves_to(task):
    template = get_template(task, "default")
    assert template.name == "sot_zero_shot"
    assert template == get_template(task, "sot_zero_shot")


def test_sot_math_prompt_is_the_release_text_byte_for_byte():
    # eval_math_gsm8k.py ZERO_SHOT_TEMPLATE.format(problem=...), Shape-of-Thought commit ae37b2ac
    release = ("You are a math expert. I am going to give you a math Problem that you need to solve. "
               "When you respond, respond only with the Solution, thinking step by step. At the end "
               "of the Solution, when you give your final answer, write it in the form \"Final Answer: "
               "The final answer is $answer$. I hope it is correct.\"\n\nProblem:\n{problem}\n\nSolution:")
    problem = "What is $1+1$?"
    for task in ("math", "gsm8k"):
        template = get_template(task, "sot_zero_shot")
        assert render(template, problem=problem) == release.format(problem=problem)
        assert template.stop == ("Problem:",)


def test_sot_countdown_and_mbpp_prompts_are_the_release_text():
    countdown = ("You are a math expert. I am going to give you a Problem that you need to solve. When you "
                 "respond, respond with the Solution, thinking step by step. And return the final answer in "
                 "<answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.\nProblem:\nUsing the "
                 "numbers [3, 5, 7], create an equation that equals 22. You can use basic arithmetic "
                 "operations (+, -, *, /) and each number can only be used once. Do not use any other "
                 "operations or numbers.\n\nSolution:")
    assert render(get_template("countdown", "sot_zero_shot"), **FIELDS["countdown"]) == countdown
    mbpp = ("You are an expert Python programmer.\nI will give you a programming task description. Your "
            "job is to write a correct, efficient, and clean Python solution. Start directly with the "
            "coding solution.\n\nRequirements:\n- Use only the Python standard library.\n- Your code must "
            "strictly satisfy the provided assertion.\n- Respond with ONLY Python code (no backticks, no "
            "comments, no explanations).\n\nProblem:\nWrite a function to add two numbers.\n\nYour code "
            "should satisfy the following assertion:\nassert add(1, 2) == 3\n\nSolution:")
    template = get_template("mbpp", "sot_zero_shot")
    assert render(template, **FIELDS["mbpp"]) == mbpp
    assert template.stop == ("Problem:", "<end_of_turn>", "User:", "Observation:", "\nclass",
                             "\ndef test", "\nif __name__")


def test_minerva_few_shot_holds_four_exemplars_and_keeps_latex_braces():
    text = render(get_template("math", "minerva_few_shot"), problem="NEW PROBLEM")
    assert text.count("Problem:\n") == 5
    assert text.count("\nFinal Answer: The final answer is") == 4  # one per exemplar
    assert "$\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$" in text  # braces not eaten by formatting
    assert "find $\\frac{a}{b},$" in text  # `{a}` is not a field, left alone
    assert text.endswith("I hope it is correct.\n\n\nProblem:\nNEW PROBLEM\n\nSolution:")


def test_render_inserts_values_literally_and_checks_fields():
    template = get_template("math", "sot_zero_shot")
    assert "x{problem}y" in render(template, problem="x{problem}y")
    with pytest.raises(ValueError, match="takes fields"):
        render(template)
    with pytest.raises(ValueError, match="takes fields"):
        render(template, problem="p", extra="e")


def test_bad_names_raise_naming_the_choices():
    with pytest.raises(ValueError, match="sot_zero_shot"):
        get_template("math", "no_such_template")
    with pytest.raises(ValueError, match="has no 'stargraph' prompt; it has math"):
        get_template("stargraph", "sot_zero_shot")


def test_math500_is_prompted_with_the_math_entry():
    from cotrepro.tasks.prompts import get_template

    for name in ("default", "sot_zero_shot"):
        assert get_template("math500", name) == get_template("math", name)
