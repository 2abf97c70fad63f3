"""The recipe: fastai's transfer-learning steps in plain PyTorch, one concept per file.

Private: import the public names from ``transferlens``. Each file needs only ``errors.py`` and
``checks.py`` beside it, plus the files its docstring names, so a reader can copy one concept
into a project. Nothing here imports the reports, the inspector or the tutorial machinery.
"""
