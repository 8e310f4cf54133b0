"""course_utils: what several weeks of the fine-tuning course reuse.

Import what you need explicitly, e.g. ``from course_utils.metrics import exact_match``.
Modules: env (profiles, device, seeds), data (the bundled tiny world), tokenizer, models,
cache (atomic artifact cache), checkpoints (the cached models later weeks start from),
training (the tiny-model training loop), measure (time, memory, metrics.json), metrics,
plots, runner (the papermill harness behind ``make course`` and the tests).
"""

__version__ = "0.1.0"
