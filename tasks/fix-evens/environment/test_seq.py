import unittest

import seq


class TestSeq(unittest.TestCase):
    def test_squares(self):
        self.assertEqual(seq.squares(4), [0, 1, 4, 9])

    def test_evens_between(self):
        self.assertEqual(seq.evens_between(2, 8), [2, 4, 6, 8])


if __name__ == "__main__":
    unittest.main()
