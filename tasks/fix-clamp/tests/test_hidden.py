"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import geometry


class TestClamp(unittest.TestCase):
    def test_inside(self):
        self.assertEqual(geometry.clamp(5, 0, 10), 5)

    def test_below(self):
        self.assertEqual(geometry.clamp(-3, 0, 10), 0)

    def test_above(self):
        self.assertEqual(geometry.clamp(15, 0, 10), 10)

    def test_on_the_bounds(self):
        self.assertEqual((geometry.clamp(0, 0, 10), geometry.clamp(10, 0, 10)), (0, 10))

    def test_floats(self):
        self.assertEqual(geometry.clamp(0.5, -1.0, 1.0), 0.5)

    def test_midpoint_untouched(self):
        self.assertEqual(geometry.midpoint((0, 0), (2, 4)), (1, 2))


if __name__ == "__main__":
    unittest.main()
