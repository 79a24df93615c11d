import unittest

import stats


class TestStats(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(stats.mean([1, 2, 3]), 2)

    def test_mean_empty(self):
        self.assertIsNone(stats.mean([]))

    def test_spread(self):
        self.assertEqual(stats.spread([4, 1, 7]), 6)


if __name__ == "__main__":
    unittest.main()
