//! Types that stand in for a resource `K` at `K`'s own URLs while parsing less of it: the
//! watch's [`Watched`](super::watch::watched::Watched) and the writes'
//! [`Written`](super::calls::written::Written). kube's `Api<T>` and watcher take any
//! `T: Resource`; these pass `K`'s identity through, so the requests are `K`'s.

/// `impl Resource for $stand_in<K>` with `K`'s kind, group, version, plural, api_version
/// and URLs; the two `meta` accessors are given, as they depend on what the type keeps.
macro_rules! stands_in_for {
    ($stand_in:ident { $($meta_accessors:item)* }) => {
        impl<K: ::kube::Resource<DynamicType = ()>> ::kube::Resource for $stand_in<K> {
            type DynamicType = ();
            type Scope = K::Scope;

            fn kind(dt: &()) -> ::std::borrow::Cow<'_, str> {
                K::kind(dt)
            }

            fn group(dt: &()) -> ::std::borrow::Cow<'_, str> {
                K::group(dt)
            }

            fn version(dt: &()) -> ::std::borrow::Cow<'_, str> {
                K::version(dt)
            }

            fn plural(dt: &()) -> ::std::borrow::Cow<'_, str> {
                K::plural(dt)
            }

            // `K`'s own, which may be static strings; the defaults format them anew on
            // every call (+4 allocations per `Api::namespaced`, measured).
            fn api_version(dt: &()) -> ::std::borrow::Cow<'_, str> {
                K::api_version(dt)
            }

            fn url_path(dt: &(), namespace: Option<&str>) -> String {
                K::url_path(dt, namespace)
            }

            $($meta_accessors)*
        }
    };
}

pub(crate) use stands_in_for;
