// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cxx - C++ runtime state through a restart: iostreams (cout for the
 * protocol, cin for "go", an ostringstream), std::map/std::vector/
 * std::string contents (long strings live on the heap), a std::function and
 * a unique_ptr, and exceptions thrown and caught before and after the
 * restart (the unwinder walks the restored .eh_frame and stack).
 */
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::vector<std::string> failures;

void check(bool ok, const std::string &what)
{
	if (!ok)
		failures.push_back(what);
}

std::string make_key(int i)
{
	return "key-" + std::to_string(i) + std::string(40 + i % 7, 'x');
}

std::vector<int> make_value(int i)
{
	std::vector<int> v;
	for (int j = 0; j < i % 50 + 1; j++)
		v.push_back(i * 1000 + j);
	return v;
}

std::map<std::string, std::vector<int>> build_map()
{
	std::map<std::string, std::vector<int>> m;
	for (int i = 0; i < 2000; i++)
		m[make_key(i)] = make_value(i);
	return m;
}

struct custom_error : std::runtime_error {
	int code;
	explicit custom_error(int c)
		: std::runtime_error("custom " + std::to_string(c)), code(c)
	{
	}
};

__attribute__((noinline)) int thrower(int depth, int code)
{
	volatile int guard = depth;
	if (depth == 0)
		throw custom_error(code);
	return thrower(depth - 1, code) + guard;
}

int catch_one(int code)
{
	try {
		thrower(50, code);
	} catch (const custom_error &e) {
		return e.code == code && std::string(e.what()) ==
						 "custom " + std::to_string(code)
			       ? 1
			       : 0;
	}
	return 0;
}

} // namespace

int main()
{
	auto m = build_map();
	auto expected = build_map();
	std::string big(100000, 'q');
	auto owned = std::make_unique<std::vector<double>>(1000, 2.5);
	int captured = 17;
	std::function<int(int)> fn = [captured](int x) { return x * captured; };

	check(catch_one(1) == 1, "exception before the checkpoint");
	for (int i = 0; i < 2000; i += 2)
		m.erase(make_key(i));
	std::cout << "ready" << std::endl;

	std::string line;
	if (!std::getline(std::cin, line) || line != "go") {
		std::cout << "FAIL: expected go, got '" << line << "'"
			  << std::endl;
		return 1;
	}
	check(m.size() == 1000,
	      "map has " + std::to_string(m.size()) + " entries");
	for (int i = 0; i < 2000; i++) {
		auto it = m.find(make_key(i));
		if (i % 2 == 0) {
			check(it == m.end(), "erased key back: " + make_key(i));
		} else if (it == m.end()) {
			check(false, "missing key " + make_key(i));
		} else {
			check(it->second == expected[make_key(i)],
			      "vector of " + make_key(i) + " differs");
		}
	}
	check(big == std::string(100000, 'q'), "big string differs");
	check(owned && owned->size() == 1000 && (*owned)[999] == 2.5,
	      "unique_ptr's vector differs");
	check(fn(3) == 51, "std::function gives the wrong result");
	check(catch_one(2) == 1, "exception after the restart");
	try {
		std::vector<int>().at(5);
		check(false, "vector::at did not throw");
	} catch (const std::out_of_range &) {
	}
	try {
		throw 42;
	} catch (int v) {
		check(v == 42, "caught the wrong int");
	}
	std::ostringstream os;
	os << std::hex << 255 << ' ' << 1.5 << ' ' << std::string("end");
	check(os.str() == "ff 1.5 end", "ostringstream gave '" + os.str() + "'");
	m.clear();
	for (int i = 0; i < 5000; i++)
		m[make_key(i)] = make_value(i); // heap grows after restart
	check(m.size() == 5000, "map refill");

	if (failures.empty()) {
		std::cout << "PASS" << std::endl;
		return 0;
	}
	std::cout << "FAIL: ";
	for (size_t i = 0; i < failures.size(); i++)
		std::cout << (i ? "; " : "") << failures[i];
	std::cout << std::endl;
	return 1;
}
