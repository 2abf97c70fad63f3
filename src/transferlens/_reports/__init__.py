"""The reports: parameter trees, trainable reports, module diffs, output equality.

Private: import the public names from ``transferlens``. They read models built by the recipe
(``transferlens._recipe``) and import nothing from the inspector or the tutorial machinery.
"""
