"""Turn titles into URL slugs."""

import re


def slugify(title):
    """Return title in lower case, with every run of non-alphanumerics turned into one hyphen.

    A slug never starts or ends with a hyphen.
    """
    return re.sub(r"[^a-z0-9]+", "-", title.lower())
