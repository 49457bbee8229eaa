"""Questions in the other language than the notes, translated by the embedded model first.

    .venv/bin/python benchmarks/translate.py SUITE.yaml [SUITE2.yaml ...] --data-dir DIR [--data-dir DIR2 ...] --part tune

Each suite is read over its own index (``--data-dir``, one per suite in order, as
``answers.py``; e.g. the ones ``ablation.py`` builds).

The product searches a Chinese question over English notes with its words looked up in
CC-CEDICT too (``assistant.crosslang``). A classic alternative is machine translation of the
query: here the embedded GGUF translates each other-language question (greedy, one line), and
the translation takes the dictionary's place on the keyword and dense side (``translate_questions``
and ``translate_to_chinese`` both on). Prints, over the other-language questions of each suite:

- retrieval (passage level, as ``ablation.py``): hit@1/5 and MRR, shipped against the translation;
- facts in the three sentences an answer shows, and the facts of the questions the gate and the
  answer-type rule let through, with the sentences ranked for the question or for its translation;
- near misses refused. The gate judges by the question's own cosine with the passages (the
  translation's cosine is same-language and let every near miss through).

Translations are cached in --work. Tried on tune and not kept (benchmarks/README.md, fifth session).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PROMPTS = {"en": "Translate this question into English. Keep names and technical terms. Reply with the translation "
                 "only.\n\n{q}",
           "zh": "把这个问题翻译成中文。专有名词和术语保持原样。只输出译文。\n\n{q}"}


def translations(questions: dict[str, str], model: str, cache: Path) -> dict[str, str]:
    """question -> its translation into the notes' language (``questions``: question -> language)."""
    from assistant.gguf import gguf_path
    from assistant.settings import load_settings

    done = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [q for q in questions if q not in done]
    if todo:
        from llama_cpp import Llama

        llm = Llama(model_path=str(gguf_path(model, load_settings().model_dir)), n_ctx=1024, n_threads=2,
                    n_threads_batch=2, verbose=False, seed=1)
        secs = []
        for q in todo:
            t = time.perf_counter()
            r = llm.create_chat_completion([{"role": "user", "content": PROMPTS[questions[q]].format(q=q)}],
                                           temperature=0.0, max_tokens=80, stop=["\n"])
            secs.append(time.perf_counter() - t)
            done[q] = r["choices"][0]["message"]["content"].strip()
        print(f"translated {len(todo)} questions, p50 {statistics.median(secs):.2f} s", file=sys.stderr)
        cache.write_text(json.dumps(done, ensure_ascii=False, indent=0))
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--data-dir", type=Path, action="append", required=True, help="the index of each suite, in order")
    ap.add_argument("--part", default="tune", choices=["tune", "report", "all"])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--work", type=Path, default=Path("/tmp/notes-assistant-ablation"))
    args = ap.parse_args()
    if len(args.data_dir) != len(args.suites):
        ap.error("give one --data-dir per suite")

    import ablation

    from assistant.answer import evidence, question_language
    from assistant.compose import answers
    from assistant.crosslang import Dictionary
    from assistant.eval import facts_found
    from assistant.query import NotesAssistant
    from assistant.retrieve import HybridRetriever
    from assistant.sentences import ASKS_FORMULA, candidates, featurize, score
    from assistant.settings import Settings

    dictionary = Dictionary.translate
    for sp, data_dir in zip(args.suites, args.data_dir):
        suite, cases = ablation.load(sp, args.part, answerable_only=False)
        if not cases or not suite.notes_dir.exists():
            continue
        s = Settings(data_dir=data_dir)
        qa = NotesAssistant(s, notes_dir=suite.notes_dir)
        notes_lang = qa.snapshot.language
        cross = [c for c in cases if question_language(c.question) != notes_lang]
        if not cross:
            continue
        tr = translations({c.question: notes_lang for c in cross}, args.model,
                          args.work / f"translations-{sp.stem}-{args.model}.json")
        translated = HybridRetriever(qa.snapshot, s.model_copy(update={"translate_questions": True,
                                                                       "translate_to_chinese": True}), top_k=10)
        emb = qa.snapshot.embedder
        answerable = [c for c in cross if c.answerable]
        own_cosine: dict[str, dict[str, float]] = {}  # question -> chunk id -> its cosine, from its own dense list
        rows: dict[str, list] = {}
        for variant in ("shipped", "translated, ranked for the question", "translated, ranked for the translation"):
            # the model's translation in the dictionary's place
            Dictionary.translate = dictionary if variant == "shipped" else (lambda self, q, lang, tr=tr: tr.get(q, ""))
            search = (lambda q, qa=qa: qa.search(q, top_k=10)) if variant == "shipped" else translated.search
            ret = ablation.measure(search, answerable, suite.notes_dir, notes_lang)["all"]
            facts, through, refused = [], [], []
            for c in cross:
                q = c.question
                ps = search(q)[: s.top_k]
                gate_ps = ps
                if variant != "shipped":  # the question's own cosine, not the translation's
                    if q not in own_cosine:
                        own_cosine[q] = {ch.id: x for ch, x in
                                         qa.snapshot.dense.search(q, s.candidates, emb.get_query_embedding(q))}
                    gate_ps = [dataclasses.replace(p, similarity=own_cosine[q].get(p.chunk.id)) for p in ps]
                rank_q = tr.get(q, q) if variant.endswith("translation") else q
                ranked = score(featurize(rank_q, candidates(ps, s.prompt_passages, bool(ASKS_FORMULA.search(q))), emb))
                ok = evidence(q, gate_ps, s, question_language(q)).enough and bool(ranked) and answers(rank_q, ranked[0])
                if c.answerable:
                    found = facts_found(" ".join(x.plain for x in ranked[:3]), c.must_include)
                    f = sum(found) / len(found) if found else 1.0
                    facts.append(f)
                    through.append(f if ok else 0.0)
                else:
                    refused.append(not ok)
            rows[variant] = [ret, facts, through, refused]
        Dictionary.translate = dictionary
        print(f"\n{sp.stem}, part {args.part}: {len(answerable)} other-language answerable questions, "
              f"{len(cross) - len(answerable)} near misses\n")
        print("| variant | hit@1 | hit@5 | MRR | facts in 3 sentences | facts answered | near misses refused |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for variant, (ret, facts, through, refused) in rows.items():
            m = lambda xs: f"{statistics.mean(xs):.3f}" if xs else "–"  # noqa: E731
            print(f"| {variant} | {ret['hit@1']:.3f} | {ret['hit@5']:.3f} | {ret['mrr']:.3f} | {m(facts)} | "
                  f"{m(through)} | {sum(refused)}/{len(refused)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
