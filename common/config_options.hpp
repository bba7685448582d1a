#pragma once
// Internal to the configuration (config.cpp): the option descriptions of cgnd.

#include <boost/program_options.hpp>

namespace cgn::common {

// Every option of cgnd, in its --help groups.
boost::program_options::options_description describe();

}  // namespace cgn::common
