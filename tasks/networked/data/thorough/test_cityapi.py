import unittest

import cityapi


class TestCityApi(unittest.TestCase):
    def test_one_city(self):
        c = cityapi.city(3)
        self.assertEqual((c["name"], c["region"]), ("Corrin", "south"))

    def test_all_cities(self):
        names = [c["name"] for c in cityapi.cities()]
        self.assertEqual(len(names), 8)
        self.assertEqual(names[0], "Aldmoor")

    def test_cities_of_a_region(self):
        self.assertEqual([c["id"] for c in cityapi.cities("west")], [7, 8])
        self.assertEqual(cityapi.cities("nowhere"), [])

    def test_an_unknown_city_is_a_lookup_error(self):
        with self.assertRaises(LookupError):
            cityapi.city(99)


if __name__ == "__main__":
    unittest.main()
