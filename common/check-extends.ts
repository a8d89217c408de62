/**
 * A compile-time assertion that `Sub` is assignable to `Super` (Temporal's
 * `checkExtends`): converters between proto enums and domain unions call it
 * so that a value added on either side breaks the build, not a run.
 * `checkExtends<A, B>(); checkExtends<B, A>();` asserts the two are equal.
 */
export function checkExtends<_Sub extends Super, Super>(): void {}
