# glintd, the glint tool and the installed package, tested as a user runs
# them. Included from tests/CMakeLists.txt.
add_executable(tools_test tools_test.cc)
target_link_libraries(tools_test PRIVATE glint glint_tool_util GTest::gtest_main
                      glint_warnings)
target_include_directories(tools_test PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(tools_test PRIVATE
  GLINTD_PATH="$<TARGET_FILE:glintd>"
  GLINT_TOOL_PATH="$<TARGET_FILE:glint_tool>")
add_dependencies(tools_test glintd glint_tool)
gtest_discover_tests(tools_test PROPERTIES TIMEOUT 120)

# glintd killed with SIGKILL and restarted; death detection by pidfd.
add_executable(monitor_restart_test monitor_restart_test.cc)
target_link_libraries(monitor_restart_test PRIVATE glint GTest::gtest_main
                      glint_warnings)
target_include_directories(monitor_restart_test PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(monitor_restart_test PRIVATE
  GLINTD_PATH="$<TARGET_FILE:glintd>")
add_dependencies(monitor_restart_test glintd)
gtest_discover_tests(monitor_restart_test PROPERTIES TIMEOUT 120)

# Installs into a temporary prefix and builds consumers with find_package and
# pkg-config. Skipped in sanitizer builds (the consumer is not sanitized).
if(GLINT_SANITIZE STREQUAL "")
  add_test(NAME install_tree_and_consumers
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install_test.sh
                   ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(install_tree_and_consumers PROPERTIES TIMEOUT 300)
endif()
