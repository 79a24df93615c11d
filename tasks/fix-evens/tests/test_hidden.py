"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import seq


class TestEvensBetween(unittest.TestCase):
    def test_both_ends_even(self):
        self.assertEqual(seq.evens_between(2, 8), [2, 4, 6, 8])

    def test_odd_ends(self):
        self.assertEqual(seq.evens_between(3, 9), [4, 6, 8])

    def test_single(self):
        self.assertEqual(seq.evens_between(4, 4), [4])

    def test_empty(self):
        self.assertEqual(seq.evens_between(5, 5), [])

    def test_negative(self):
        self.assertEqual(seq.evens_between(-4, 0), [-4, -2, 0])

    def test_squares_untouched(self):
        self.assertEqual(seq.squares(3), [0, 1, 4])


if __name__ == "__main__":
    unittest.main()
