"""Small text utilities."""


def reverse_words(text):
    """Return the words of text in reverse order, separated by single spaces."""
    words = text.split()
    return " ".join(words[len(words) - 1 : 0 : -1])


def shout(text):
    """Return text in upper case with an exclamation mark."""
    return text.upper() + "!"
