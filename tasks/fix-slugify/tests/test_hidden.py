"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import slug


class TestSlugify(unittest.TestCase):
    def test_trailing(self):
        self.assertEqual(slug.slugify("Hello, World!"), "hello-world")

    def test_both_ends(self):
        self.assertEqual(slug.slugify("  Python 3  "), "python-3")

    def test_inner_runs(self):
        self.assertEqual(slug.slugify("a -- b __ c"), "a-b-c")

    def test_plain(self):
        self.assertEqual(slug.slugify("already-fine"), "already-fine")

    def test_nothing_left(self):
        self.assertEqual(slug.slugify("!!!"), "")


if __name__ == "__main__":
    unittest.main()
