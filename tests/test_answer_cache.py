"""The answer cache: repeats and paraphrases hit, near-misses and other scopes do not."""

from __future__ import annotations

import threading

import pytest

from rag.answer_cache import AnswerCache, cache_scope, question_terms, same_question
from rag.ask import Answer, Source, Usage
from rag.cite import CitedSentence
from rag.settings import Settings

SCOPE = "scope-a"


def _answer(text: str = "The K2 came out in 2019 [1].") -> Answer:
    source = Source(n=1, path="k2.md", page=None, start=0, end=20, text="Released 2019.", score=1.0)
    sentence = CitedSentence(text=text, citations=[1], support=0.9, supported=True)
    return Answer("When was the K2 released?", text, False, None, [sentence], [source], "complete",
                  Usage(total_s=2.5))  # fmt: skip


@pytest.fixture
def cache(embedder, one_torch_thread) -> AnswerCache:
    return AnswerCache(embedder, threshold=0.9, max_entries=3)


def test_exact_repeat_hits_without_embedding(cache: AnswerCache) -> None:
    cache.put("When was the K2 released?", SCOPE, _answer())
    cache.embedder = None  # type: ignore[assignment]  # any embedding now would fail
    got = cache.get("  when was the K2 released ", SCOPE)
    assert got is not None and got.answer == "The K2 came out in 2019 [1]."
    assert (cache.hits, cache.misses, cache.entries) == (1, 0, 1)


def test_paraphrase_hits(cache: AnswerCache) -> None:
    cache.put("When was the K2 released?", SCOPE, _answer())
    got = cache.get("Please tell me when the K2 was released.", SCOPE)
    assert got is not None and got.cached


def test_near_miss_with_another_identifier_or_word_misses(cache: AnswerCache) -> None:
    cache.put("When was the K2 released?", SCOPE, _answer())
    cache.put("What was one of the Normans' major exports?", SCOPE, _answer("Horsemen [1]."))
    assert cache.get("When was the K3 released?", SCOPE) is None
    assert cache.get("What was one of the Normans' major imports?", SCOPE) is None
    assert cache.get("When wasn't the K2 released?", SCOPE) is None
    assert cache.misses == 3


def test_guard_none_serves_the_near_miss_that_words_refuses() -> None:
    k2, k3 = (
        question_terms("When was the K2 released?"),
        question_terms("When was the K3 released?"),
    )
    assert same_question(k2, k3, "none")
    assert not any(same_question(k2, k3, g) for g in ("ids", "words", "order"))
    black = question_terms("What was discovered by Black and later by Watt?")
    watt = question_terms("What was discovered by Watt and later by Black?")
    assert not same_question(black, watt, "words")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("In what country is Normandy located?", "Normandy is located in which country?", True),
        ("Who is the CEO of Acme?", "who's Acme's CEO", True),
        ("What are the three main sources?", "What are the 3 main sources?", True),
        ("Who moves coal from a pit to a bunker?", "Who moves coal from a bunker to a pit?", False),
        ("Did Rome beat Carthage?", "Did Carthage beat Rome?", False),
        ("What engine needs valves?", "What engine doesn't need valves?", False),
        ("What architecture came after Norman?", "What architecture came before Norman?", False),
        ("When was the treaty signed?", "Where was the treaty signed?", False),
    ],
)  # fmt: skip
def test_words_guard_keeps_rewordings_and_refuses_changed_roles_or_words(
    a: str, b: str, same: bool
) -> None:
    assert same_question(question_terms(a), question_terms(b), "words") is same


def test_other_scope_misses(cache: AnswerCache) -> None:
    settings = Settings()
    scope = cache_scope(settings, generation=1, k=8, strict=False)
    cache.put("When was the K2 released?", scope, _answer())
    assert cache.get("When was the K2 released?", scope) is not None
    newer = cache_scope(settings, generation=2, k=8, strict=False)
    other = cache_scope(settings.with_overrides({"retrieval.fusion": "rrf"}), 1, k=8, strict=False)
    stricter = cache_scope(settings, generation=1, k=8, strict=True)
    assert len({scope, newer, other, stricter}) == 4
    for s in (newer, other, stricter):
        assert cache.get("When was the K2 released?", s) is None


def test_least_recently_used_is_dropped(cache: AnswerCache) -> None:
    for q in ("Who founded Acme?", "Where is Acme based?", "What does Acme sell?"):
        cache.put(q, SCOPE, _answer(q))
    assert cache.get("Who founded Acme?", SCOPE) is not None  # now the most recently used
    cache.put("How big is Acme?", SCOPE, _answer())
    assert cache.entries == 3
    assert cache.get("Where is Acme based?", SCOPE) is None
    assert cache.get("Who founded Acme?", SCOPE) is not None
    assert cache.get("How big is Acme?", SCOPE) is not None


def test_copy_is_marked_cached_and_the_stored_answer_is_not_mutated(cache: AnswerCache) -> None:
    original = _answer()
    cache.put("When was the K2 released?", SCOPE, original)
    got = cache.get("when was the K2 released", SCOPE)
    assert got is not None and got.cached and got.question == "when was the K2 released"
    assert not original.cached and original.question == "When was the K2 released?"
    got.sentences.clear()
    got.sources[0].text = "changed"
    again = cache.get("When was the K2 released?", SCOPE)
    assert (
        again is not None
        and len(again.sentences) == 1
        and again.sources[0].text == "Released 2019."
    )
    cache.put("When was the K2 released?", SCOPE, got)  # a cached copy is not stored again
    assert cache.entries == 1


def test_clear_forgets_everything(cache: AnswerCache) -> None:
    cache.put("When was the K2 released?", SCOPE, _answer())
    cache.clear()
    assert cache.entries == 0
    assert cache.get("When was the K2 released?", SCOPE) is None


def test_abstentions_are_cached(cache: AnswerCache) -> None:
    """An abstention is a verified outcome: the same settings and index give it again."""
    abstained = Answer("Who won in 1850?", "Not found in your documents.", True, "weak evidence",
                       [], [], "complete", Usage())  # fmt: skip
    cache.put("Who won in 1850?", SCOPE, abstained)
    got = cache.get("who won in 1850", SCOPE)
    assert got is not None and got.abstained and got.abstain_reason == "weak evidence"


def test_evidence_must_agree_when_both_sides_give_it(cache: AnswerCache) -> None:
    cache.put("When was the K2 released?", SCOPE, _answer(), evidence=7)
    assert cache.get("When was the K2 released?", SCOPE, evidence=8) is None
    assert cache.get("When was the K2 released?", SCOPE, evidence=7) is not None
    assert cache.get("When was the K2 released?", SCOPE) is not None


def test_threads_share_one_cache(cache: AnswerCache) -> None:
    cache.max_entries = 100
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                cache.put(f"Who made model {n}-{i}?", SCOPE, _answer())
                assert cache.get(f"who made model {n}-{i}", SCOPE) is not None
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and cache.entries == 80 and cache.hits == 80
