# Debian's xsimd 8.1 package exports `xsimd` with INTERFACE_LINK_LIBRARIES "xtl", but xtl is an
# optional extra (only for xtl::xcomplex) that vitcc does not use and that is usually not installed;
# without this, every consumer would try to link a non-existent -lxtl.
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_vitcc_xsimd_libs xsimd INTERFACE_LINK_LIBRARIES)
  if(_vitcc_xsimd_libs)
    list(REMOVE_ITEM _vitcc_xsimd_libs xtl)
    set_target_properties(xsimd PROPERTIES INTERFACE_LINK_LIBRARIES "${_vitcc_xsimd_libs}")
  endif()
endif()
