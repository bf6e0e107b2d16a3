#include <gtest/gtest.h>
#include "bitsandbytes/bitsandbytes.h"
TEST(Library, ReportsVersion) { EXPECT_STREQ(bnb_version(), "0.50.2"); }
