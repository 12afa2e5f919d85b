import random
from dataclasses import dataclass

import pytest

from rag.errors import ConfigError
from rag.pack import lost_in_the_middle, pack, token_budget


@dataclass(frozen=True)
class P:
    text: str
    score: float


def words(text: str) -> int:
    return len(text.split())


def test_token_budget_subtracts_template_and_answer() -> None:
    assert token_budget(4096, 300, 512) == 3284


@pytest.mark.parametrize(("window", "template", "answer"), [(2048, 1500, 600), (512, 0, 512)])
def test_token_budget_without_room_raises_actionable_config_error(
    window: int, template: int, answer: int
) -> None:
    with pytest.raises(ConfigError, match="no room for passages.*larger context window"):
        token_budget(window, template, answer)


def test_token_budget_rejects_negative_inputs() -> None:
    with pytest.raises(ConfigError, match="template_tokens must be >= 0"):
        token_budget(4096, -1, 10)


def test_lost_in_the_middle_puts_strongest_at_both_ends() -> None:
    assert lost_in_the_middle([1, 2, 3, 4, 5]) == [1, 3, 5, 4, 2]
    assert lost_in_the_middle([1, 2, 3, 4]) == [1, 3, 4, 2]
    assert lost_in_the_middle([1, 2]) == [1, 2]
    assert lost_in_the_middle([]) == []


def test_pack_orders_packed_passages_for_lost_in_the_middle() -> None:
    passages = [P(f"p{i}", score) for i, score in enumerate([0.1, 0.9, 0.5, 0.7, 0.3])]
    packed = pack(passages, budget=100, count_tokens=words)
    assert [p.score for p in packed] == [0.9, 0.5, 0.1, 0.3, 0.7]


def test_pack_skips_a_passage_that_does_not_fit_and_tries_smaller_ones() -> None:
    passages = [P("a " * 6, 0.9), P("b " * 5, 0.8), P("c " * 3, 0.7), P("d " * 2, 0.6)]
    packed = pack(passages, budget=10, count_tokens=words)
    assert {p.text[0] for p in packed} == {"a", "c"}  # b (5) no longer fits after a (6)
    assert sum(words(p.text) for p in packed) <= 10


def test_pack_drops_a_passage_larger_than_the_budget() -> None:
    passages = [P("huge " * 50, 1.0), P("small text", 0.1)]
    assert pack(passages, budget=10, count_tokens=words) == [P("small text", 0.1)]
    assert pack([P("huge " * 50, 1.0)], budget=10, count_tokens=words) == []


def test_pack_pays_separators_only_between_passages() -> None:
    passages = [P("a b c", 0.9), P("d e f", 0.8), P("g h i", 0.7)]
    assert len(pack(passages, budget=9, count_tokens=words, separator_tokens=0)) == 3
    assert len(pack(passages, budget=9, count_tokens=words, separator_tokens=1)) == 2
    assert len(pack(passages, budget=11, count_tokens=words, separator_tokens=1)) == 3
    assert len(pack(passages[:1], budget=3, count_tokens=words, separator_tokens=5)) == 1


def test_pack_of_nothing_is_empty() -> None:
    assert pack([], budget=100, count_tokens=words) == []
    assert pack([P("a", 1.0)], budget=0, count_tokens=words) == []


def test_pack_rejects_negative_budget() -> None:
    with pytest.raises(ConfigError, match="budget=-1"):
        pack([], budget=-1, count_tokens=words)


def test_pack_never_exceeds_the_budget_and_keeps_the_best_that_fits() -> None:
    rng = random.Random(1234)
    for _ in range(500):
        passages = [
            P("w " * rng.randint(0, 40), rng.choice([0.1, 0.5, rng.random()]))
            for _ in range(rng.randint(0, 15))
        ]
        budget = rng.randint(0, 120)
        separator = rng.randint(0, 5)
        packed = pack(passages, budget, count_tokens=words, separator_tokens=separator)
        cost = sum(words(p.text) for p in packed) + separator * max(len(packed) - 1, 0)
        assert cost <= budget
        assert sorted(map(id, packed)) == sorted({id(p) for p in packed})  # no duplicates
        fitting = [p for p in passages if words(p.text) <= budget]
        if fitting:  # the strongest passage that fits on its own is always packed
            best = max(p.score for p in fitting)
            assert any(p.score == best for p in packed)
        if len(packed) >= 2:
            ranked = sorted(packed, key=lambda p: -p.score)
            assert packed[0].score == ranked[0].score
            assert packed[-1].score == ranked[1].score
