//! Procedural macros for `weir-sdk`: `#[filter]` and `#[transform]`.
//!
//! Use them through `weir_sdk` (`#[weir_sdk::filter(...)]`); the SDK's crate docs describe the
//! arguments. The macros parse every column declaration at compile time with
//! `weir_abi::parse_type`, embed the manifest JSON in the `weir.policy` custom section and, when
//! compiling for `wasm32`, generate the ABI exports that call the annotated function.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, LitStr, MetaNameValue, Token, Type};
use weir_abi::{ABI_VERSION, ColumnDecl, Manifest, Passthrough, PolicyKind, parse_type};

/// Marks `fn(&Batch[, &P | &mut P]) -> Result<Selection>` as the module's filter.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(PolicyKind::Filter, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Marks `fn(&Batch[, &P | &mut P]) -> Result<Output>` as the module's transform.
#[proc_macro_attribute]
pub fn transform(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(PolicyKind::Transform, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

struct Decl {
    decl: ColumnDecl,
    span: Span,
}

fn parse_decl(lit: &LitStr) -> syn::Result<Decl> {
    let text = lit.value();
    let err = |msg: String| syn::Error::new(lit.span(), msg);
    let text = text.trim();
    let (name, rest) = if let Some(quoted) = text.strip_prefix('`') {
        let end = quoted
            .find('`')
            .ok_or_else(|| err("unclosed backtick in column name".into()))?;
        let rest = quoted[end + 1..].trim_start();
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| err(format!("expected `name: type`, got `{text}`")))?;
        (quoted[..end].to_string(), rest)
    } else {
        let (n, r) = text
            .split_once(':')
            .ok_or_else(|| err(format!("expected `name: type`, got `{text}`")))?;
        (n.trim().to_string(), r)
    };
    if name.is_empty() {
        return Err(err("empty column name".into()));
    }
    let mut ty = rest.trim();
    let optional = ty.ends_with('?');
    if optional {
        ty = ty[..ty.len() - 1].trim_end();
    }
    let parsed = parse_type(ty).map_err(|e| err(format!("column `{name}`: type `{ty}`: {e}")))?;
    Ok(Decl {
        decl: ColumnDecl {
            name,
            ty: parsed.to_string(),
            optional,
        },
        span: lit.span(),
    })
}

fn str_lit(e: &Expr) -> syn::Result<LitStr> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        _ => Err(syn::Error::new(e.span(), "expected a string literal")),
    }
}

fn decl_list(e: &Expr) -> syn::Result<Vec<Decl>> {
    match e {
        Expr::Array(a) => a.elems.iter().map(|el| parse_decl(&str_lit(el)?)).collect(),
        _ => Err(syn::Error::new(
            e.span(),
            "expected a list of column declarations, e.g. [\"temp: float64?\"]",
        )),
    }
}

fn column_spec(d: &Decl) -> TokenStream2 {
    let parsed = parse_type(&d.decl.ty).expect("checked when parsed");
    let name = &d.decl.name;
    let id = format_ident!("{}", format!("{:?}", parsed.id));
    let width = parsed.byte_width;
    let unit = match parsed.unit {
        Some(u) => {
            let u = format_ident!("{}", format!("{u:?}"));
            quote!(::core::option::Option::Some(::weir_sdk::__rt::TimeUnit::#u))
        }
        None => quote!(::core::option::Option::None),
    };
    let tz = match parsed.tz {
        Some(tz) => quote!(::core::option::Option::Some(#tz)),
        None => quote!(::core::option::Option::None),
    };
    let optional = d.decl.optional;
    quote! {
        ::weir_sdk::__rt::ColumnSpec {
            name: #name,
            ty: ::weir_sdk::__rt::ParsedType {
                id: ::weir_sdk::__rt::WireTypeId::#id,
                byte_width: #width,
                unit: #unit,
                tz: #tz,
            },
            optional: #optional,
        }
    }
}

fn expand(kind: PolicyKind, attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = syn::parse::Parser::parse2(
        Punctuated::<MetaNameValue, Token![,]>::parse_terminated,
        attr,
    )?;
    let func: ItemFn = syn::parse2(item)?;
    let mut reads = Vec::new();
    let mut writes: Option<Vec<Decl>> = None;
    let mut passthrough: Option<Passthrough> = None;
    let mut name: Option<String> = None;
    let mut init: Option<Expr> = None;
    for arg in &args {
        let key = arg
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "reads" => reads = decl_list(&arg.value)?,
            "writes" if kind == PolicyKind::Transform => writes = Some(decl_list(&arg.value)?),
            "passthrough" if kind == PolicyKind::Transform => {
                let lit = str_lit(&arg.value)?;
                passthrough = Some(match lit.value().as_str() {
                    "none" => Passthrough::None,
                    "unread" => Passthrough::Unread,
                    "all" => Passthrough::All,
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "passthrough must be \"none\", \"unread\" or \"all\", not \"{other}\""
                            ),
                        ));
                    }
                });
            }
            "name" => name = Some(str_lit(&arg.value)?.value()),
            "init" => init = Some(arg.value.clone()),
            "writes" | "passthrough" => {
                return Err(syn::Error::new(
                    arg.path.span(),
                    format!("`{key}` is for transforms; a filter only reads"),
                ));
            }
            _ => {
                return Err(syn::Error::new(
                    arg.path.span(),
                    "unknown argument; expected reads, writes, passthrough, name or init",
                ));
            }
        }
    }
    if kind == PolicyKind::Transform && writes.is_none() {
        return Err(syn::Error::new(
            Span::call_site(),
            "a transform needs `writes = [\"name: type\", ...]`",
        ));
    }
    let writes = writes.unwrap_or_default();

    // The function's shape.
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.asyncness.is_some() {
        return Err(syn::Error::new(
            sig.span(),
            "a policy function cannot be generic or async",
        ));
    }
    let fn_name = &sig.ident;
    let (param_ty, mutable) = match sig.inputs.len() {
        1 => (None, false),
        2 => match &sig.inputs[1] {
            FnArg::Typed(pt) => match &*pt.ty {
                Type::Reference(r) => (Some((*r.elem).clone()), r.mutability.is_some()),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "the parameters argument must be `&P` or `&mut P`",
                    ));
                }
            },
            FnArg::Receiver(r) => return Err(syn::Error::new(r.span(), "unexpected `self`")),
        },
        _ => {
            return Err(syn::Error::new(
                sig.inputs.span(),
                "a policy function takes `batch: &Batch` and optionally `params: &P` or `&mut P`",
            ));
        }
    };
    if param_ty.is_none() && init.is_some() {
        return Err(syn::Error::new(
            Span::call_site(),
            "`init` needs a second argument that receives its state",
        ));
    }

    let name = match name {
        Some(n) => n,
        None => std::env::var("CARGO_PKG_NAME").map_err(|_| {
            syn::Error::new(
                Span::call_site(),
                "CARGO_PKG_NAME is not set; give `name = \"...\"`",
            )
        })?,
    };
    let manifest = Manifest {
        abi_version: ABI_VERSION,
        name,
        crate_version: std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        sdk_version: env!("CARGO_PKG_VERSION").to_string(),
        kind,
        reads: reads.iter().map(|d| d.decl.clone()).collect(),
        writes: writes.iter().map(|d| d.decl.clone()).collect(),
        passthrough: if kind == PolicyKind::Filter {
            Passthrough::All
        } else {
            passthrough.unwrap_or_default()
        },
    };
    if let Err(e) = manifest.validate() {
        let span = reads
            .iter()
            .chain(&writes)
            .next()
            .map_or(Span::call_site(), |d| d.span);
        return Err(syn::Error::new(span, e.to_string()));
    }
    let json = manifest.to_json();
    let json_len = json.len();
    let json_lit = syn::LitByteStr::new(json.as_bytes(), Span::call_site());
    let read_specs: Vec<_> = reads.iter().map(column_spec).collect();
    let write_specs: Vec<_> = writes.iter().map(column_spec).collect();
    let n_reads = read_specs.len();
    let n_writes = write_specs.len();
    let passthrough_none =
        manifest.passthrough == Passthrough::None && kind == PolicyKind::Transform;

    let state_ty = param_ty.clone().unwrap_or_else(|| syn::parse_quote!(()));
    let parse = match (&param_ty, &init) {
        (None, _) => quote!(|_: &[u8]| ::core::result::Result::Ok(())),
        (Some(p), None) => quote!(::weir_sdk::__rt::parse_json::<#p>),
        (Some(_), Some(f)) => quote!(|bytes: &[u8]| {
            let config = ::weir_sdk::__rt::parse_json(bytes)?;
            (#f)(config)
        }),
    };
    let call = if param_ty.is_none() {
        quote!(#fn_name(batch))
    } else if mutable {
        quote!(#fn_name(batch, state))
    } else {
        quote!(#fn_name(batch, &*state))
    };
    let process = match kind {
        PolicyKind::Filter => quote!(process_filter),
        PolicyKind::Transform => quote!(process_transform),
    };
    let state_pat = if param_ty.is_none() {
        quote!(_state)
    } else {
        quote!(state)
    };

    Ok(quote! {
        #func

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(link_section = "weir.policy")]
            #[used]
            static __WEIR_MANIFEST: [u8; #json_len] = *#json_lit;

            static __WEIR_READS: [::weir_sdk::__rt::ColumnSpec; #n_reads] = [#(#read_specs),*];
            static __WEIR_WRITES: [::weir_sdk::__rt::ColumnSpec; #n_writes] = [#(#write_specs),*];
            static __WEIR_SPEC: ::weir_sdk::__rt::PolicySpec = ::weir_sdk::__rt::PolicySpec {
                reads: &__WEIR_READS,
                writes: &__WEIR_WRITES,
                passthrough_none: #passthrough_none,
            };
            static __WEIR_STATE: ::weir_sdk::__rt::State<#state_ty> = ::weir_sdk::__rt::State::new();

            #[unsafe(no_mangle)]
            extern "C" fn weir_abi_version() -> i32 {
                #ABI_VERSION as i32
            }

            #[unsafe(no_mangle)]
            extern "C" fn weir_alloc(size: i32, align: i32) -> i32 {
                ::weir_sdk::__rt::alloc(size, align)
            }

            #[unsafe(no_mangle)]
            extern "C" fn weir_free(ptr: i32, size: i32, align: i32) {
                ::weir_sdk::__rt::free(ptr, size, align)
            }

            #[unsafe(no_mangle)]
            extern "C" fn weir_init(ptr: i32, len: i32) -> i32 {
                ::weir_sdk::__rt::init(&__WEIR_STATE, ptr, len, #parse)
            }

            #[unsafe(no_mangle)]
            extern "C" fn weir_process(batch: i32) -> i32 {
                ::weir_sdk::__rt::#process(
                    &__WEIR_SPEC,
                    &__WEIR_STATE,
                    batch,
                    |batch: &::weir_sdk::Batch, #state_pat: &mut #state_ty| #call,
                )
            }
        };

        /// The policy's manifest JSON (also in the module's `weir.policy` section).
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub const __WEIR_MANIFEST_JSON: &str = #json;

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            // Natively there are no exports; this keeps the policy function "used".
            let _ = #fn_name;
        };
    })
}
