import unittest

import textutil


class TestTextutil(unittest.TestCase):
    def test_shout(self):
        self.assertEqual(textutil.shout("hi"), "HI!")

    def test_reverse_words(self):
        self.assertEqual(textutil.reverse_words("one two three"), "three two one")


if __name__ == "__main__":
    unittest.main()
