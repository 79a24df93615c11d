import unittest

import slug


class TestSlug(unittest.TestCase):
    def test_words(self):
        self.assertEqual(slug.slugify("Fix the Bug"), "fix-the-bug")

    def test_punctuation(self):
        self.assertEqual(slug.slugify("Hello, World!"), "hello-world")


if __name__ == "__main__":
    unittest.main()
