"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import textutil


class TestReverseWords(unittest.TestCase):
    def test_three(self):
        self.assertEqual(textutil.reverse_words("one two three"), "three two one")

    def test_one(self):
        self.assertEqual(textutil.reverse_words("solo"), "solo")

    def test_empty(self):
        self.assertEqual(textutil.reverse_words(""), "")

    def test_spaces(self):
        self.assertEqual(textutil.reverse_words("  a   b "), "b a")

    def test_shout_untouched(self):
        self.assertEqual(textutil.shout("hi"), "HI!")


if __name__ == "__main__":
    unittest.main()
