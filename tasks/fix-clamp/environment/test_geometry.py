import unittest

import geometry


class TestGeometry(unittest.TestCase):
    def test_midpoint(self):
        self.assertEqual(geometry.midpoint((0, 0), (2, 4)), (1, 2))

    def test_clamp_inside(self):
        self.assertEqual(geometry.clamp(5, 0, 10), 5)


if __name__ == "__main__":
    unittest.main()
