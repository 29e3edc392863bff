# The ImDrawList plotting widget (no GL, no LibTorch), a library of its own so its windowless tests link it
# without the rest of the app.
if(NOT TARGET PkgConfig::IMGUI)
  pkg_check_modules(IMGUI REQUIRED IMPORTED_TARGET imgui)
endif()
add_library(mergescope_plot_view STATIC ${CMAKE_CURRENT_LIST_DIR}/plot_view.cpp)
target_include_directories(mergescope_plot_view PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(mergescope_plot_view PUBLIC mergescope_analysis PkgConfig::IMGUI)
target_compile_options(mergescope_plot_view PRIVATE -Wall -Wextra)
