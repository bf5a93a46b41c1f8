"""Evaluation protocols of the paper (DESIGN §1), one module each; nothing heavy is imported here.

- `features`:  frozen-encoder clip features from the evaluation loader, cached on disk
- `linear`:    `LinearConfig`, `linear_probe()`: linear classifier, clip/video top-k
- `retrieval`: `RetrievalConfig`, `retrieval()`: test queries train by cosine, top-k
- `finetune`:  `FinetuneConfig`, `finetune()`: encoder + new head, multi-crop test, exact resume
- `report`:    results.json / results.md, plots, `compare_table()`
"""
